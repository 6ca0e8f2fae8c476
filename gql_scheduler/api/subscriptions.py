"""The Subscription root: events resumable with `after`, and an execution's live output.

Filters run in the feed, before any GraphQL work. Each event's result is computed once
per distinct subscription document and shared by its subscribers (api/shared_results.py).
Expected failures (a bad cursor, events already pruned, an unknown execution) reach the
client as a GraphQL error with a code and the argument's name, then the stream completes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import TypeVar

import strawberry
from graphql import GraphQLError
from starlette.websockets import WebSocket, WebSocketDisconnect

from gql_scheduler.api import enums  # noqa: F401  (registers the enums' GraphQL names)
from gql_scheduler.api.context import Info
from gql_scheduler.api.errors import raise_as_graphql_error
from gql_scheduler.api.nodes import Execution, Job
from gql_scheduler.domain import events as domain_events
from gql_scheduler.domain.events import ExecutionEventType, JobEventType
from gql_scheduler.domain.executions import ExecutionStatus
from gql_scheduler.domain.output import OutputChunk as DomainChunk
from gql_scheduler.domain.output import OutputStream
from gql_scheduler.services.streams import FeedEvent, OverflowCallback, SubscriberTooSlow
from gql_scheduler.tasks import BackgroundTasks

T = TypeVar("T")

# Close code for a subscriber that fell too far behind (4000-4999: for applications).
TOO_SLOW_CLOSE_CODE = 4008
TOO_SLOW_REASON = "subscriber too slow: resubscribe with after: <last event id received>"


@strawberry.type(name="ExecutionEvent")
class ExecutionEventNode:
    feed_event: strawberry.Private[FeedEvent]

    @strawberry.field(
        description="Monotonic event id: pass it as `after` to resume a subscription "
        "without losing events."
    )
    def id(self) -> str:
        return self.feed_event.event.id

    @strawberry.field
    def type(self) -> ExecutionEventType:
        event = self.feed_event.event
        assert isinstance(event, domain_events.ExecutionEvent)
        return event.type

    @strawberry.field
    def at(self) -> datetime:
        return self.feed_event.event.at

    @strawberry.field(description="The execution as it is when the event is delivered.")
    def execution(self) -> Execution:
        assert self.feed_event.execution is not None  # the feed delivers only these
        return Execution(domain=self.feed_event.execution)


@strawberry.type(name="JobEvent")
class JobEventNode:
    feed_event: strawberry.Private[FeedEvent]

    @strawberry.field
    def id(self) -> str:
        return self.feed_event.event.id

    @strawberry.field
    def type(self) -> JobEventType:
        event = self.feed_event.event
        assert isinstance(event, domain_events.JobEvent)
        return event.type

    @strawberry.field
    def at(self) -> datetime:
        return self.feed_event.event.at

    @strawberry.field
    def job_id(self) -> strawberry.ID:
        return strawberry.ID(self.feed_event.event.job_id)

    @strawberry.field(description="Null once the job is deleted.")
    async def job(self, info: Info) -> Job | None:
        job = await info.context.loaders.job.load(self.feed_event.event.job_id)
        return Job(domain=job) if job else None

    @strawberry.field
    def actor(self) -> str | None:
        event = self.feed_event.event
        return event.actor if isinstance(event, domain_events.JobEvent) else None


@strawberry.type
class OutputChunk:
    execution_id: strawberry.ID
    seq: int
    stream: OutputStream
    text: str
    at: datetime

    @classmethod
    def of(cls, execution_id: str, chunk: DomainChunk) -> OutputChunk:
        return cls(
            execution_id=strawberry.ID(execution_id),
            seq=chunk.seq,
            stream=chunk.stream,
            text=chunk.text,
            at=chunk.at,
        )


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def execution_events(
        self,
        info: Info,
        job_id: strawberry.ID | None = None,
        statuses: list[ExecutionStatus] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[ExecutionEventNode, None]:
        with raise_as_graphql_error(info):
            stream = info.context.streams.execution_events(
                job_id=str(job_id) if job_id is not None else None,
                statuses=statuses,
                after=after,
                on_overflow=_closer(info),
            )
        async for feed_event in _guarded(info, stream):
            yield ExecutionEventNode(feed_event=feed_event)

    @strawberry.subscription
    async def job_events(
        self, info: Info, job_id: strawberry.ID | None = None, after: str | None = None
    ) -> AsyncGenerator[JobEventNode, None]:
        with raise_as_graphql_error(info):
            stream = info.context.streams.job_events(
                job_id=str(job_id) if job_id is not None else None,
                after=after,
                on_overflow=_closer(info),
            )
        async for feed_event in _guarded(info, stream):
            yield JobEventNode(feed_event=feed_event)

    @strawberry.subscription(
        description="Live output of a running execution; completes when the execution finishes."
    )
    async def execution_output(
        self, info: Info, execution_id: strawberry.ID
    ) -> AsyncGenerator[OutputChunk, None]:
        stream = info.context.streams.execution_output(str(execution_id))
        async for chunk in _guarded(info, stream):
            yield OutputChunk.of(str(execution_id), chunk)


async def _guarded(info: Info, stream: AsyncIterator[T]) -> AsyncIterator[T]:
    """The stream's expected failures as coded GraphQL errors; always closed."""
    try:
        while True:
            with raise_as_graphql_error(info):
                try:
                    item = await anext(stream)
                except StopAsyncIteration:
                    return
                except SubscriberTooSlow as error:
                    raise GraphQLError(error.message, extensions={"code": "TOO_SLOW"}) from None
            yield item
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _closer(info: Info) -> OverflowCallback | None:
    """What to do when this subscriber falls too far behind.

    Its operation task is cancelled, since it may be stuck in a send that waits for the
    client to read, and the connection is closed with the reason. The close frame queues
    behind what the client has not read yet: the server's send honours flow control, so a
    client that reads again gets everything up to it, then 4008. One that never reads
    again is closed by the transport's keepalive (its ping gets no pong).
    """
    socket = info.context.request
    operation = asyncio.current_task()
    if not isinstance(socket, WebSocket) or operation is None:
        return None

    def close(_queue: object) -> None:
        operation.cancel()
        closing.start(_close(socket), name="close-too-slow")

    return close


# The closes of too-slow subscribers still under way (a test waits for them to end).
closing = BackgroundTasks()


async def _close(socket: WebSocket) -> None:
    # Already closed or gone (the keepalive may have ended it while the close waited):
    # nothing left to do.
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await socket.close(code=TOO_SLOW_CLOSE_CODE, reason=TOO_SLOW_REASON)
