"""What a broker does: tells this instance, soon after, of every commit that wrote events.

A signal carries no data (domain/events.py names them); whoever hears it reads the outbox,
so a signal lost or repeated costs a read, never an event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

SignalHandler = Callable[[Iterable[str]], None]


class Broker(Protocol):
    @property
    def spans_processes(self) -> bool:
        """Whether signals from other processes arrive (job changes made elsewhere)."""
        ...

    @property
    def listening(self) -> bool:
        """Whether signals can arrive now (readiness: a lost listener is being replaced)."""
        ...

    async def start(self, on_signals: SignalHandler) -> None: ...

    async def stop(self) -> None: ...
