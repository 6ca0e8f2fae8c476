"""Subscription transport: both websocket protocols, with keep-alive pings on by default.

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

from gql_scheduler.api import ws_limits
from gql_scheduler.api.fast_lane import FastLane
from gql_scheduler.tasks import BackgroundTasks


class PingingTransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    ping_interval: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pinger = BackgroundTasks()

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
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
        await self._pinger.stop()
        await super().shutdown()


def pinging_handler(interval: float) -> type[PingingTransportWSHandler]:
    """The handler class with its interval set (Strawberry instantiates the class)."""
    return type(
        "PingingTransportWSHandler", (PingingTransportWSHandler,), {"ping_interval": interval}
    )
