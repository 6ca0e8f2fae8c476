"""The request limits and protocol errors on websockets, for both protocols.

Every operation a socket starts goes through the query gate (api/limits.py) before
Strawberry or the fast lane sees it, so a document that does not parse, names no
operation or is over a limit gets an `error` message, on graphql-transport-ws and on the
legacy graphql-ws alike. Stock Strawberry answered a subscription with a syntax error with
a bare `complete` (transport-ws) or nothing (legacy), because its parser cache raises
outside the path that reports errors, and a document of several operations with no
operationName with silence.

Strawberry counts open operations and times out a missing `connection_init` on
graphql-transport-ws only; the legacy handler below does both too, and the refusals name
the limit with code BAD_REQUEST.
"""

from __future__ import annotations

import asyncio
from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage,
    StartMessage,
)

from gql_scheduler.api.limits import Admission, QueryGate, limit_exceeded
from gql_scheduler.tasks import BackgroundTasks

INIT_TIMEOUT_CLOSE_CODE = 4408  # graphql-transport-ws's code, used for both protocols


def admit(view: object, payload: object) -> Admission:
    """The gate's answer for a subscribe/start payload (the view's gate, if it has one)."""
    gate: QueryGate | None = getattr(view, "gate", None)
    if not isinstance(payload, dict):
        payload = {}
    if gate is None:  # a view without limits: Strawberry decides alone
        return Admission()
    return gate.admit(payload.get("query"), payload.get("variables"), payload.get("operationName"))


def too_many_operations(limit: int) -> GraphQLError:
    message = f"this connection already has {limit} operations open, the limit; stop one first"
    return limit_exceeded("maxSubscriptionsPerConnection", message)


async def refuse_subscribe(handler: Any, message: dict[str, Any]) -> bool:
    """graphql-transport-ws: refuse a `subscribe` over the connection's operation limit
    with a coded error (Strawberry's own refusal has no code); True if refused."""
    limit: int | None = handler.max_subscriptions_per_connection
    operations = handler.operations
    if not handler.connection_acknowledged or limit is None or message["id"] in operations:
        return False  # Strawberry's own checks (4401, 4409) come first
    if len(operations) < limit:
        return False
    payload = [too_many_operations(limit).formatted]
    await handler.send_message({"id": message["id"], "type": "error", "payload": payload})
    return True


def init_timed_out(seconds: float) -> GraphQLError:
    message = f"no connection_init within {seconds:g} s"
    return limit_exceeded("wsConnectionInitTimeoutSeconds", message)


class LimitedLegacyWSHandler(BaseGraphQLWSHandler[Any, None]):
    """graphql-ws (legacy) with the gate, a coded operation limit and an init timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_timer = BackgroundTasks()

    async def handle(self) -> None:
        seconds: float | None = getattr(self.view, "connection_init_seconds", None)
        if seconds is not None:
            self._init_timer.start(self._close_unless_initialised(seconds), name="ws-init")
        try:
            await super().handle()
        finally:
            await self._init_timer.stop()

    async def _close_unless_initialised(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.connection_acknowledged:
            return
        error = init_timed_out(seconds)
        try:
            refusal = {"type": "connection_error", "payload": error.formatted}
            await self.send_message(refusal)  # type: ignore[arg-type]
            await self.websocket.close(code=INIT_TIMEOUT_CLOSE_CODE, reason=error.message)
        except Exception:  # the peer is gone already; the reader side cleans up
            return

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            await self._init_timer.stop()

    async def handle_start(self, message: StartMessage) -> None:
        if self.connection_acknowledged:
            error = self._refusal(message)
            if error is not None:
                # One error object: the legacy protocol's `error` payload is not a list.
                await self.send_message(
                    {"type": "error", "id": message["id"], "payload": error.formatted}
                )
                return
        await super().handle_start(message)

    def _refusal(self, message: StartMessage) -> GraphQLError | None:
        limit = self.max_subscriptions_per_connection
        if limit is not None and message["id"] not in self.tasks and len(self.tasks) >= limit:
            return too_many_operations(limit)
        admission = admit(self.view, message.get("payload"))
        return admission.errors[0] if admission.errors else None
