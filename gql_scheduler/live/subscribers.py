"""What the feed hands out (a FeedEvent per committed event) and to whom (a bounded
SubscriberQueue per subscriber)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gql_scheduler.domain.errors import SchedulerError
from gql_scheduler.domain.events import Event
from gql_scheduler.domain.executions import Execution


@dataclass(eq=False, slots=True)
class FeedEvent:
    """One committed event, shared by every subscriber it goes to.

    `shared` holds work done once for all of them: the API keeps each distinct
    subscription document's result for this event there (api/shared_results.py).
    """

    event: Event
    execution: Execution | None = None
    shared: dict[Any, Any] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return int(self.event.id)


class SubscriberTooSlow(SchedulerError):
    """The subscriber did not keep up and was closed; resume with `after`."""


class SubscriptionClosed(SchedulerError):
    """The subscription was closed by the server."""


OverflowCallback = Callable[["SubscriberQueue"], None]


class SubscriberQueue:
    """A bounded queue of feed events for one subscriber.

    `offer` never waits: when the queue is full the subscriber is marked too slow, told
    through `on_overflow` (which closes its connection), and receives nothing more. The
    others never wait for it, and its memory stays bounded.

    While the subscriber is still `catching_up` (replaying the outbox), a full queue is
    not its fault: it is marked `lagged` instead, queues nothing more, and its stream reads
    what it missed from the outbox too (`EventFeed.reseam`).
    """

    def __init__(
        self,
        wants: Callable[[FeedEvent], bool],
        *,
        max_queued: int,
        needs_executions: bool = False,
        on_overflow: OverflowCallback | None = None,
    ) -> None:
        self.wants = wants
        self.max_queued = max_queued
        self.needs_executions = needs_executions
        self.on_overflow = on_overflow
        self.seam = 0
        self.catching_up = False
        self.lagged = False
        self.overflowed = False
        self.closed = False
        self._queue: collections.deque[FeedEvent] = collections.deque()
        self._ready = asyncio.Event()

    def offer(self, feed_event: FeedEvent) -> None:
        if self.closed or self.overflowed or self.lagged:
            return
        if len(self._queue) >= self.max_queued:
            if self.catching_up:
                self.lagged = True
                self._queue.clear()
                return
            self.overflowed = True
            self._queue.clear()
            self._ready.set()
            if self.on_overflow is not None:
                self.on_overflow(self)
            return
        self._queue.append(feed_event)
        self._ready.set()

    def restart_at(self, seam: int) -> None:
        """Receive the events after `seam` from now on; those queued are read again."""
        self.seam = seam
        self.lagged = False
        self._queue.clear()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self) -> FeedEvent:
        """The next feed_event, waiting for one; raises once closed or too slow."""
        while not self._queue:
            if self.overflowed:
                raise SubscriberTooSlow(
                    f"more than {self.max_queued} events were waiting for this subscriber; "
                    "subscribe again with after: <the last event id received>"
                )
            if self.closed:
                raise SubscriptionClosed()
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def next_nowait(self) -> FeedEvent | None:
        return self._queue.popleft() if self._queue else None
