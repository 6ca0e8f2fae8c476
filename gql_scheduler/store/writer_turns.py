"""SQLite's one writer at a time, in order, with the engine's writers first.

The engine's claims and starts must not queue behind API work: with 200 API clients
writing, a plain FIFO lock put every claim behind the requests that came before it, and a
fifth of the scheduled runs were SKIPPED. Each waiter says whether it is the engine's
(`urgent`); a turn goes to the oldest urgent waiter, else to the oldest other one, except
that after URGENT_IN_A_ROW urgent turns a waiting other one gets the next: at 500 runs/s
the engine always had a writer waiting, and API writes starved outright without it.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

URGENT_IN_A_ROW = 2


class WriterTurns:
    def __init__(self) -> None:
        self._busy = False
        self._urgent_in_a_row = 0
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._others: collections.deque[asyncio.Future[None]] = collections.deque()

    @asynccontextmanager
    async def turn(self, *, urgent: bool) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    @property
    def waiting(self) -> int:
        return len(self._urgent) + len(self._others)

    async def _acquire(self, urgent: bool) -> None:
        if not self._busy and not self.waiting:
            self._busy = True
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._others).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # the turn came just as we gave up: pass it on
            else:
                self._forget(granted)
            raise

    def _release(self) -> None:
        others_due = self._urgent_in_a_row >= URGENT_IN_A_ROW
        order = (self._others, self._urgent) if others_due else (self._urgent, self._others)
        for queue in order:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    urgent = queue is self._urgent
                    self._urgent_in_a_row = self._urgent_in_a_row + 1 if urgent else 0
                    waiter.set_result(None)  # still busy: the turn is handed over
                    return
        self._busy = False
        self._urgent_in_a_row = 0

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        for queue in (self._urgent, self._others):
            if waiter in queue:
                queue.remove(waiter)
