"""Prunes the outbox: events older than the retention period are deleted, oldest first.

Any instance may prune; deleting is idempotent and the recorded horizon only grows, so
two instances pruning at once agree. Each batch is its own short transaction.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from gql_scheduler.domain.clock import Clock
from gql_scheduler.store.database import Database
from gql_scheduler.store.events import EventLog

log = logging.getLogger("gql_scheduler.retention")

PRUNE_BATCH = 10_000


def prune_interval(retention_seconds: float) -> float:
    """Often enough that little beyond the retention period is kept, at most every 10 min."""
    return min(max(retention_seconds / 10, 1.0), 600.0)


class EventPruner:
    def __init__(self, database: Database, clock: Clock, *, retention_seconds: float) -> None:
        self.database = database
        self.clock = clock
        self.retention = timedelta(seconds=retention_seconds)

    async def prune_once(self) -> int:
        """Delete every event past retention; returns how many."""
        before = self.clock.now() - self.retention
        total = 0
        while True:
            async with self.database.write() as connection:
                deleted = await EventLog(connection).prune(before=before, limit=PRUNE_BATCH)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
        if total:
            log.info("pruned %d events", total, extra={"action": "events_pruned"})
        return total

    async def run(self) -> None:
        interval = prune_interval(self.retention.total_seconds())
        while True:
            try:
                await self.prune_once()
            except Exception as error:  # a failed pass is retried on the next one
                self.database.outage.failed("pruning events", error)
            await asyncio.sleep(interval)
