"""Subscription transport: both websocket protocols, authenticated (api/ws_access.py), with
keep-alive pings on by default.

Strawberry sends the legacy graphql-ws protocol's "ka" messages when asked, but never pings
on graphql-transport-ws; this handler does, once the connection is acknowledged. Pings keep
idle connections open through proxies, and a send that fails shows a dead peer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage

from gql_scheduler.api import ws_limits
from gql_scheduler.api.fast_lane import FastLane
from gql_scheduler.api.ws_access import ConnectionAccess
from gql_scheduler.tasks import BackgroundTasks


class PingingTransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    ping_interval: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pinger = BackgroundTasks()

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload", {})
        first = not self.connection_init_received and isinstance(payload, dict)
        if first and not await _access(self).admit(self, payload):
            self.connection_init_received = True
            if self.connection_init_timeout_task:
                self.connection_init_timeout_task.cancel()
            return
        await super().handle_connection_init(message)
        if self.connection_acknowledged and not self._pinger and self.ping_interval > 0:
            self._pinger.start(self._ping_regularly(), name="ws-pings")

    async def _ping_regularly(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self.send_message({"type": "ping"})
            except Exception:  # the connection is gone; the reader side cleans up
                return

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not await ws_limits.refuse_subscribe(self, message):  # type: ignore[arg-type]
            await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Any, None]) -> None:
        """Subscriptions that can take the fast lane do; the rest go Strawberry's way.
        Either way only once the query gate admits them (api/ws_limits.py)."""
        payload = {
            "query": operation.query,
            "variables": operation.variables,
            "operationName": operation.operation_name,
        }
        admission = ws_limits.admit(self.view, payload)
        if admission.errors:
            await operation.send_initial_errors(admission.errors)
            return
        if await _access(self).refused(self, admission.document, operation.operation_name):
            self.operations.pop(operation.id, None)
            return
        lane: FastLane | None = getattr(self.view, "fast_lane", None)
        executor = None
        if lane is not None and admission.document is not None:
            executor = lane.prepare(
                admission.document, operation.variables, operation.operation_name, self.context
            )
        if lane is None or executor is None:
            await super().run_operation(operation)
            return
        try:
            await lane.run(executor, operation.id, operation.send_operation_message)
        except Exception as error:  # a bug: logged, and the operation ends for the client
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    async def shutdown(self) -> None:
        _access(self).forget(self)
        await self._pinger.stop()
        await super().shutdown()


class AuthenticatingWSHandler(ws_limits.LimitedLegacyWSHandler):
    """The legacy graphql-ws protocol, admitted, limited and checked as the other one is."""

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        payload = message.get("payload")
        first = not self.connection_acknowledged and (payload is None or isinstance(payload, dict))
        if first and not await _access(self).admit(self, payload):
            return
        await super().handle_connection_init(message)

    async def handle_start(self, message: StartMessage) -> None:
        payload: dict[str, Any] = dict(message.get("payload", {}))
        if self.connection_acknowledged:
            # The gate first (its answer is cached): a document it refuses is reported by
            # the limited handler below, and only an admitted one is judged for its role.
            admission = ws_limits.admit(self.view, payload)
            refused = admission.document is not None and await _access(self).refused(
                self, admission.document, payload.get("operationName")
            )
            if refused:
                return
        await super().handle_start(message)

    async def cleanup(self) -> None:
        _access(self).forget(self)
        await super().cleanup()


def _access(handler: Any) -> ConnectionAccess:
    access: ConnectionAccess = handler.view.access
    return access


def pinging_handler(interval: float) -> type[PingingTransportWSHandler]:
    """The handler class with its interval set (Strawberry instantiates the class)."""
    return type(
        "PingingTransportWSHandler", (PingingTransportWSHandler,), {"ping_interval": interval}
    )
