"""Subscriptions over graphql-transport-ws with Strawberry's per-event pipeline cut short.

For every event and every subscriber, Strawberry's stream runs graphql-core's response
mapping, its own result handling and every extension's hooks, then builds and encodes the
message: about two thirds of the server's CPU in a fan-out to 500 subscribers, although
the result itself is shared (api/shared_results.py). This lane runs a subscription as
graphql-core's algorithm says and no more: the document comes parsed, validated and
measured from the query gate (api/limits.py), as every document does, the source stream
comes from the same resolvers, and each event is executed once per distinct document and
sent pre-encoded. Errors are masked and logged as the MaskErrors extension would.

Only subscriptions that build cleanly take this lane; anything else goes down
Strawberry's own path, which reports the problem exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLError, OperationType
from graphql.execution import create_source_event_stream
from strawberry.schema.base import BaseSchema

from gql_scheduler.api import errors as api_errors
from gql_scheduler.api.shared_results import SharedEventExecutor, shared_results_of

log = logging.getLogger("gql_scheduler.api")

Send = Callable[[Any], Awaitable[None]]


class FastLane:
    def __init__(self, schema: BaseSchema) -> None:
        self.graphql_schema = schema._schema  # type: ignore[attr-defined]

    def prepare(
        self,
        document: DocumentNode,
        variables: dict[str, Any] | None,
        name: str | None,
        context: Any,
    ) -> SharedEventExecutor | None:
        """An executor for an admitted subscription; None sends it down Strawberry's path."""
        executor = SharedEventExecutor.build(
            self.graphql_schema, document, None, context, variables, name
        )
        if isinstance(executor, list):
            return None
        if executor.operation.operation is not OperationType.SUBSCRIPTION:
            return None
        return executor if isinstance(executor, SharedEventExecutor) else None

    async def run(self, executor: SharedEventExecutor, operation_id: str, send: Send) -> None:
        """Stream until the source ends or fails, then send "complete"."""
        source = create_source_event_stream(executor)
        if executor.is_awaitable(source):
            source = await source
        if isinstance(source, ExecutionResult):  # the resolver refused to start
            errors = _masked(source.errors or [])
            await send({"id": operation_id, "type": "error", "payload": errors})
            return
        try:
            await self._forward(executor, source, operation_id, send)
        except GraphQLError as error:  # an expected failure of the stream (bad cursor...)
            payload = {"data": None, "errors": _masked([error])}
            await send({"id": operation_id, "type": "next", "payload": payload})
        await send({"id": operation_id, "type": "complete"})

    async def _forward(
        self, executor: SharedEventExecutor, source: Any, operation_id: str, send: Send
    ) -> None:
        stream: AsyncIterator[Any] = aiter(source)
        try:
            async for event in stream:
                result = _result_of(executor, event)
                if executor.is_awaitable(result):
                    result = await result
                await send({"id": operation_id, "type": "next", "payload": _payload(result)})
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()


def _result_of(executor: SharedEventExecutor, event: Any) -> Any:
    """The shared result if a subscriber with this document already has it."""
    shared = shared_results_of(event)
    if shared is not None:
        found = shared.get(executor.share_key)
        if isinstance(found, ExecutionResult):
            return found
    return executor.build_per_event_executor(event).execute_operation(False)


def _payload(result: ExecutionResult) -> dict[str, Any]:
    if not result.errors:
        return {"data": result.data}
    return {"data": result.data, "errors": _masked(result.errors)}


def _masked(errors: list[GraphQLError]) -> list[Any]:
    api_errors.log_unexpected(errors)
    return [
        (api_errors.masked(error) if api_errors.is_unexpected(error) else error).formatted
        for error in errors
    ]
