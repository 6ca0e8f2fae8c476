"""One reader of the outbox per instance, fanning committed events out to subscribers.

Whatever wrote an event, on whichever instance, the broker's signal wakes the feed, which
reads the outbox after the last id it dispatched and hands each event to every interested
queue without waiting for any of them (a full queue closes its subscriber instead).
The outbox read is one query per wake-up, shared by all subscribers, and so is loading
the executions the events are about.

`last_id` only grows, and every event up to it has been dispatched: a queue
registered now receives exactly the events after it, which is the seam replay uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from gql_scheduler.domain.events import (
    EventKind,
    JobEvent,
    cancel_signal_execution,
    output_signal_execution,
)
from gql_scheduler.live.subscribers import FeedEvent, SubscriberQueue
from gql_scheduler.store.database import Database
from gql_scheduler.store.events import EventLog, EventQuery
from gql_scheduler.tasks import BackgroundTasks

log = logging.getLogger("gql_scheduler.live")

PAGE_SIZE = 500
JobListener = Callable[[JobEvent], None]
CancelListener = Callable[[str], None]


class EventFeed:
    def __init__(self, database: Database, *, poll_seconds: float = 1.0) -> None:
        self.database = database
        # A safety net under the signals: a wake-up this often while anyone listens.
        self.poll_seconds = poll_seconds
        self.last_id = 0
        self._queues: set[SubscriberQueue] = set()
        self._job_listeners: list[JobListener] = []
        self._cancel_listeners: list[CancelListener] = []
        self._output_waiters: dict[str, set[asyncio.Event]] = {}
        self._wake = asyncio.Event()
        self._reading = asyncio.Lock()
        self._background = BackgroundTasks()

    @property
    def subscriber_count(self) -> int:
        return len(self._queues)

    async def start(self) -> None:
        async with self.database.read() as connection:
            self.last_id = await EventLog(connection).last_id()
        self._background.start(self._run(), name="event-feed")

    async def stop(self) -> None:
        await self._background.stop()
        for queue in list(self._queues):
            queue.close()
        self._queues.clear()

    def add_job_listener(self, listener: JobListener) -> None:
        """Hear every job event from now on, from any instance (timer re-sync)."""
        self._job_listeners.append(listener)

    def add_cancel_listener(self, listener: CancelListener) -> None:
        """Hear of each cancellation asked for on any instance, by execution id."""
        self._cancel_listeners.append(listener)

    def on_signals(self, signals: Iterable[str]) -> None:
        """The broker's handler: cheap and synchronous; the reading happens in the task."""
        for signal in signals:
            if (execution_id := output_signal_execution(signal)) is not None:
                for waiter in self._output_waiters.get(execution_id, ()):
                    waiter.set()
            elif (execution_id := cancel_signal_execution(signal)) is not None:
                for listener in self._cancel_listeners:
                    listener(execution_id)
            else:
                self._wake.set()

    # ------------------------------------------------------------------ subscribing
    async def subscribe(self, queue: SubscriberQueue) -> SubscriberQueue:
        """Register; the queue's seam is the id after which it receives events."""
        async with self._reading:
            if not self._interested():
                # Nobody was reading: nothing before now is owed to anyone.
                async with self.database.read() as connection:
                    self.last_id = max(self.last_id, await EventLog(connection).last_id())
            queue.seam = self.last_id
            self._queues.add(queue)
        return queue

    async def reseam(self, queue: SubscriberQueue) -> None:
        """Move a lagged queue's seam up to what has been dispatched: its stream
        replays up to the new seam from the outbox, and the queue resumes after it."""
        async with self._reading:
            queue.restart_at(self.last_id)

    def unsubscribe(self, queue: SubscriberQueue) -> None:
        self._queues.discard(queue)
        queue.close()

    def watch_output(self, execution_id: str) -> asyncio.Event:
        """An event set whenever new output of the execution is committed."""
        waiter = asyncio.Event()
        self._output_waiters.setdefault(execution_id, set()).add(waiter)
        return waiter

    def unwatch_output(self, execution_id: str, waiter: asyncio.Event) -> None:
        waiters = self._output_waiters.get(execution_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._output_waiters[execution_id]

    # ------------------------------------------------------------------ reading
    def _interested(self) -> bool:
        return bool(self._queues or self._job_listeners)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if not self._interested():
                continue
            try:
                async with self._reading:
                    await self._catch_up()
            except Exception as error:  # the feed outlives a failed read; the next wake retries
                self.database.outage.failed("reading the event outbox", error)
            else:
                self.database.outage.succeeded(wrote=False)

    async def _catch_up(self) -> None:
        while True:
            feed_events, through = await self._read_page()
            for feed_event in feed_events:
                self._dispatch(feed_event)
            self.last_id = max(self.last_id, through)
            if len(feed_events) < PAGE_SIZE:
                return

    async def _read_page(self) -> tuple[list[FeedEvent], int]:
        """The next page of events, with the executions they are about when wanted."""
        everything = bool(self._queues)
        async with self.database.read() as connection:
            outbox = EventLog(connection)
            if not everything:  # only timers listen: job events, and skip the rest
                through = await outbox.last_id()
                found = await outbox.read(
                    after=self.last_id,
                    through=through,
                    limit=PAGE_SIZE,
                    query=EventQuery(kind=EventKind.JOB),
                )
                if len(found) == PAGE_SIZE:
                    through = int(found[-1].id)
                return [FeedEvent(event) for event in found], through
            if self._wants_executions():
                pairs = await outbox.read_with_executions(
                    after=self.last_id, limit=PAGE_SIZE, query=EventQuery()
                )
                feed_events = [FeedEvent(event, execution) for event, execution in pairs]
            else:
                found = await outbox.read(after=self.last_id, limit=PAGE_SIZE, query=EventQuery())
                feed_events = [FeedEvent(event) for event in found]
        return feed_events, feed_events[-1].id if feed_events else self.last_id

    def _wants_executions(self) -> bool:
        return any(queue.needs_executions for queue in self._queues)

    def _dispatch(self, feed_event: FeedEvent) -> None:
        if isinstance(feed_event.event, JobEvent):
            for listener in self._job_listeners:
                try:
                    listener(feed_event.event)
                except Exception:  # one listener's bug must not stop the others' events
                    log.exception("job event listener failed", extra={"action": "feed_failed"})
        for queue in list(self._queues):
            if queue.wants(feed_event):
                queue.offer(feed_event)
                if queue.overflowed:  # it was told; nothing more goes to it
                    self._queues.discard(queue)
