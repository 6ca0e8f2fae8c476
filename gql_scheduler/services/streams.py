"""The live use cases: event streams resumable from an id, and an execution's live output.

A resumed stream registers with the feed first, then replays the outbox from `after` up to
the registration's seam, then hands over what the feed queued meanwhile: every event once,
in id order, with no gap and no duplicate where replay meets live.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

from gql_scheduler.domain.errors import Expired, NotFound
from gql_scheduler.domain.events import (
    EventKind,
    ExecutionEvent,
    ExecutionEventType,
    JobEvent,
    event_types_for,
    parse_cursor,
)
from gql_scheduler.domain.executions import Execution, ExecutionStatus
from gql_scheduler.domain.output import OutputChunk
from gql_scheduler.live.feed import EventFeed
from gql_scheduler.live.subscribers import (
    FeedEvent,
    OverflowCallback,
    SubscriberQueue,
    SubscriberTooSlow,
)
from gql_scheduler.store.database import Database
from gql_scheduler.store.events import EventLog, EventQuery
from gql_scheduler.store.executions import ExecutionRepository
from gql_scheduler.store.output_chunks import OutputRepository

# What the streams hand to their callers, and how a too-slow subscriber's stream ends.
__all__ = ["FeedEvent", "OverflowCallback", "StreamService", "SubscriberTooSlow"]

REPLAY_PAGE = 500
OUTPUT_PAGE = 1000
# Output signals are the fast path; this bounds the wait if one is missed.
OUTPUT_POLL_SECONDS = 1.0
TERMINAL_EVENTS = frozenset(
    {
        ExecutionEventType.SUCCEEDED,
        ExecutionEventType.FAILED,
        ExecutionEventType.TIMED_OUT,
        ExecutionEventType.CANCELLED,
        ExecutionEventType.SKIPPED,
        ExecutionEventType.MISSED,
    }
)


@dataclass(frozen=True, slots=True)
class StreamFilter:
    kind: EventKind
    job_id: str | None = None
    types: frozenset[ExecutionEventType] | None = None

    def query(self) -> EventQuery:
        types = frozenset(t.value for t in self.types) if self.types is not None else None
        return EventQuery(kind=self.kind, job_id=self.job_id, types=types)

    def matches(self, feed_event: FeedEvent) -> bool:
        event = feed_event.event
        if self.job_id is not None and event.job_id != self.job_id:
            return False
        if self.kind is EventKind.JOB:
            return isinstance(event, JobEvent)
        if not isinstance(event, ExecutionEvent) or feed_event.execution is None:
            return False  # an execution event's subscriber needs the execution
        return self.types is None or event.type in self.types


class StreamService:
    def __init__(self, database: Database, feed: EventFeed, *, max_queued: int) -> None:
        self.database = database
        self.feed = feed
        self.max_queued = max_queued

    def execution_events(
        self,
        *,
        job_id: str | None,
        statuses: Collection[ExecutionStatus] | None,
        after: str | None,
        on_overflow: OverflowCallback | None = None,
    ) -> AsyncIterator[FeedEvent]:
        types = event_types_for(statuses) if statuses is not None else None
        wanted = StreamFilter(EventKind.EXECUTION, job_id, types)
        return self._stream(wanted, parse_cursor(after), on_overflow)

    def job_events(
        self,
        *,
        job_id: str | None,
        after: str | None,
        on_overflow: OverflowCallback | None = None,
    ) -> AsyncIterator[FeedEvent]:
        wanted = StreamFilter(EventKind.JOB, job_id)
        return self._stream(wanted, parse_cursor(after), on_overflow)

    async def _stream(
        self, wanted: StreamFilter, after: int | None, on_overflow: OverflowCallback | None
    ) -> AsyncIterator[FeedEvent]:
        if after is not None:
            await self._check_retained(after)
        queue = SubscriberQueue(
            wanted.matches,
            max_queued=self.max_queued,
            needs_executions=wanted.kind is EventKind.EXECUTION,
            on_overflow=on_overflow,
        )
        queue.catching_up = after is not None
        await self.feed.subscribe(queue)
        try:
            position = after if after is not None else queue.seam
            while position < queue.seam:
                through = queue.seam
                async for feed_event in self._replay(wanted, after=position, through=through):
                    yield feed_event
                position = through
                if queue.lagged:  # more arrived meanwhile than the queue holds
                    await self.feed.reseam(queue)
            queue.catching_up = False
            while True:
                feed_event = await queue.next()
                if feed_event.id > position:  # a cursor ahead of the seam skips what it has seen
                    position = feed_event.id
                    yield feed_event
        finally:
            self.feed.unsubscribe(queue)

    async def _check_retained(self, after: int) -> None:
        async with self.database.read() as connection:
            pruned_through = await EventLog(connection).pruned_through()
        if after < pruned_through:
            raise Expired(
                f"events up to id {pruned_through} have been pruned (EVENT_RETENTION_SECONDS),"
                f" so some after {after} are gone; reload the current state and subscribe"
                " without after",
                field=["after"],
            )

    async def _replay(
        self, wanted: StreamFilter, *, after: int, through: int
    ) -> AsyncIterator[FeedEvent]:
        while True:
            async with self.database.read() as connection:
                found = await EventLog(connection).read_with_executions(
                    after=after, through=through, limit=REPLAY_PAGE, query=wanted.query()
                )
            for feed_event in (FeedEvent(event, execution) for event, execution in found):
                if wanted.matches(feed_event):
                    yield feed_event
            if len(found) < REPLAY_PAGE:
                return
            after = int(found[-1][0].id)

    # ------------------------------------------------------------------ output
    async def execution_output(self, execution_id: str) -> AsyncIterator[OutputChunk]:
        """The chunks kept so far, then each new one as it is committed; ends with the run."""
        ended = SubscriberQueue(lambda d: _ends(d, execution_id), max_queued=4)
        committed = self.feed.watch_output(execution_id)
        await self.feed.subscribe(ended)
        try:
            finished = (await self._execution(execution_id)).status.is_terminal
            next_seq = 0
            while True:
                committed.clear()
                chunks = await self._chunks(execution_id, next_seq)
                for chunk in chunks:
                    next_seq = chunk.seq + 1
                    yield chunk
                if len(chunks) == OUTPUT_PAGE:
                    continue
                if finished:
                    return
                woken = await _wait_for_output(committed, ended)
                if woken is None:  # no signal for a while: ask the store
                    woken = (await self._execution(execution_id)).status.is_terminal
                finished = woken
        finally:
            self.feed.unsubscribe(ended)
            self.feed.unwatch_output(execution_id, committed)

    async def _execution(self, execution_id: str) -> Execution:
        async with self.database.read() as connection:
            found = await ExecutionRepository(connection).get_many([execution_id])
        if execution_id not in found:
            raise NotFound(f"no execution with id {execution_id}", field=["execution_id"])
        return found[execution_id]

    async def _chunks(self, execution_id: str, from_seq: int) -> list[OutputChunk]:
        async with self.database.read() as connection:
            return await OutputRepository(connection).read(
                execution_id, from_seq=from_seq, limit=OUTPUT_PAGE
            )


def _ends(feed_event: FeedEvent, execution_id: str) -> bool:
    event = feed_event.event
    return (
        isinstance(event, ExecutionEvent)
        and event.execution_id == execution_id
        and event.type in TERMINAL_EVENTS
    )


async def _wait_for_output(committed: asyncio.Event, ended: SubscriberQueue) -> bool | None:
    """Wait for new output (False) or the end of the run (True); None after a quiet while.

    The last chunks commit with (or before) the run's end, so after the end one more read
    finds everything.
    """
    if ended.next_nowait() is not None:
        return True
    end = asyncio.ensure_future(ended.next())
    more = asyncio.ensure_future(committed.wait())
    try:
        done, _ = await asyncio.wait(
            {end, more}, timeout=OUTPUT_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if end in done:
            end.result()  # raises if the feed closed the queue (shutting down)
            return True
        return False if more in done else None
    finally:
        for waiter in (end, more):
            waiter.cancel()
        await asyncio.gather(end, more, return_exceptions=True)
