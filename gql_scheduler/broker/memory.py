"""One process: the database's commit listener hands its signals straight over."""

from __future__ import annotations

from collections.abc import Iterable

from gql_scheduler.broker.base import SignalHandler


class MemoryBroker:
    spans_processes = False

    def __init__(self) -> None:
        self._on_signals: SignalHandler | None = None

    @property
    def listening(self) -> bool:
        return self._on_signals is not None

    async def start(self, on_signals: SignalHandler) -> None:
        self._on_signals = on_signals

    async def stop(self) -> None:
        self._on_signals = None

    def publish(self, signals: Iterable[str]) -> None:
        """Called after each commit that wrote events or output (store.database.Database)."""
        if self._on_signals is not None:
            self._on_signals(signals)
