"""Authentication on websockets, over both protocols.

A connection is admitted at its `connection_init`, by the key in the payload
(`{"Authorization": "Bearer <secret>"}`) or else the one on the upgrade request, and is
closed with 4401 without one. An operation its role may not run closes it with 4403 before
the operation starts. When a key is revoked, its open connections are closed with 4401.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, Protocol

from graphql import DocumentNode, GraphQLSchema
from starlette.websockets import WebSocketDisconnect

from gql_scheduler.api.access import (
    FORBIDDEN_CLOSE_CODE,
    UNAUTHENTICATED_CLOSE_CODE,
    Authenticator,
    refusal,
)
from gql_scheduler.api.context import Context
from gql_scheduler.tasks import BackgroundTasks

UNAUTHENTICATED_REASON = "unauthorized: no valid API key"
REVOKED_REASON = "unauthorized: the API key was revoked"
_MAX_REASON_BYTES = 123  # what a close frame can carry


class SocketAdapter(Protocol):
    async def close(self, code: int, reason: str) -> None: ...


class Handler(Protocol):
    """What both of Strawberry's protocol handlers have."""

    @property
    def context(self) -> Context: ...

    @property
    def websocket(self) -> SocketAdapter: ...


class ConnectionAccess:
    def __init__(self, authenticator: Authenticator, schema: GraphQLSchema) -> None:
        self.authenticator = authenticator
        self.schema = schema
        self._by_key: dict[str, weakref.WeakSet[Any]] = {}
        self._closing = BackgroundTasks()

    async def admit(self, handler: Handler, payload: object) -> bool:
        """Whether the connection may go on; when not, it has been closed with 4401."""
        principal = handler.context.principal
        if isinstance(payload, dict):
            authorization = payload.get("Authorization", payload.get("authorization"))
            if authorization is not None:
                principal = self.authenticator.principal_for(authorization)
        if principal is None:
            await _close(handler, UNAUTHENTICATED_CLOSE_CODE, UNAUTHENTICATED_REASON)
            return False
        handler.context.principal = principal
        if principal.key_id is not None:
            self._by_key.setdefault(principal.key_id, weakref.WeakSet()).add(handler)
        return True

    async def refused(
        self, handler: Handler, document: DocumentNode | None, operation_name: object
    ) -> bool:
        """Whether the operation (admitted by the query gate) is refused for the
        connection's role; it is then closed with 4403."""
        if document is None:
            return False  # the protocol handler reports the bad document
        name = operation_name if isinstance(operation_name, str) else None
        error = refusal(self.schema, document, name, handler.context.principal)
        if error is None:
            return False
        await _close(handler, FORBIDDEN_CLOSE_CODE, error.message)
        return True

    def forget(self, handler: Handler) -> None:
        principal = handler.context.principal
        if principal is not None and principal.key_id in self._by_key:
            self._by_key[principal.key_id].discard(handler)

    def close_revoked(self, key_ids: set[str]) -> None:
        for key_id in key_ids:
            for handler in list(self._by_key.pop(key_id, ())):
                self._closing.start(
                    _close(handler, UNAUTHENTICATED_CLOSE_CODE, REVOKED_REASON),
                    name="close-revoked",
                )

    async def stop(self) -> None:
        await self._closing.stop()


async def _close(handler: Handler, code: int, reason: str) -> None:
    reason = reason.encode("utf-8")[:_MAX_REASON_BYTES].decode("utf-8", "ignore")
    # A peer already gone has nothing left to be told.
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await handler.websocket.close(code, reason)
