"""Executes each subscription event once per distinct document, not once per subscriber.

Stock Strawberry (graphql-core) runs the subscription's selection set for every subscriber
and every event. Subscribers whose documents, operation names and variables are the same
get the same result for the same event, so the first one to ask computes it and stores it
on the event's feed_event (`FeedEvent.shared`), which lives only as long as the event is
being delivered. Everyone else awaits that result. What each client receives is unchanged.

The key would have to include the caller's identity if results ever depended on it
(permissions); today they do not.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from graphql import OperationType, print_ast
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gql_scheduler.services.streams import FeedEvent


class SharedData(dict[str, Any]):
    """A shared result's data, JSON-encoded once for all its subscribers (encode_message)."""

    __slots__ = ("_encoded",)

    def encoded(self) -> str:
        try:
            return self._encoded
        except AttributeError:
            self._encoded: str = json.dumps(self, separators=(",", ":"))
            return self._encoded


def encode_message(message: object) -> str | None:
    """A websocket message whose payload is only a shared result's data, encoded from the
    data's cached JSON; None for any other message."""
    if not isinstance(message, dict):
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or len(payload) != 1:
        return None
    data = payload.get("data")
    if not isinstance(data, SharedData) or set(message) != {"id", "type", "payload"}:
        return None
    head = json.dumps({"id": message["id"], "type": message["type"]}, separators=(",", ":"))
    return f'{head[:-1]},"payload":{{"data":{data.encoded()}}}}}'


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.share_key: tuple[str, str, str] | None = None
        if self.operation.operation is OperationType.SUBSCRIPTION:
            self.share_key = _share_key(self)

    def execute_operation(self, serially: bool | None = None) -> Any:
        shared = shared_results_of(self.root_value) if self.share_key is not None else None
        if shared is None:
            return super().execute_operation(serially)
        found = shared.get(self.share_key)
        if found is None:
            for_event = getattr(self.context_value, "for_event", None)
            if for_event is not None:
                self.context_value = for_event()
            result = super().execute_operation(serially)
            if not self.is_awaitable(result):
                shared[self.share_key] = result = _with_shared_data(result)
                return result
            found = shared[self.share_key] = asyncio.ensure_future(_shared_data_of(result))
        if isinstance(found, asyncio.Future):
            # Shielded: one subscriber leaving must not cancel the others' result.
            return asyncio.shield(found)
        return found


def shared_results_of(root_value: Any) -> dict[Any, Any] | None:
    feed_event = getattr(root_value, "feed_event", None)
    return feed_event.shared if isinstance(feed_event, FeedEvent) else None


def _share_key(executor: StrawberryGraphQLCoreExecutionContext) -> tuple[str, str, str]:
    operation = executor.operation
    document = operation.loc.source.body if operation.loc is not None else print_ast(operation)
    name = operation.name.value if operation.name is not None else ""
    variables = json.dumps(executor.variable_values.coerced, sort_keys=True, default=str)
    return document, name, variables


def _with_shared_data(result: Any) -> Any:
    if isinstance(getattr(result, "data", None), dict):
        result.data = SharedData(result.data)
    return result


async def _shared_data_of(pending: Any) -> Any:
    return _with_shared_data(await pending)
