"""WAL checkpoints for the embedded SQLite database, off the writers' path.

In WAL mode every commit appends pages to the `-wal` file, and a checkpoint copies them back
into the database file (with an fsync of each). SQLite's own automatic checkpoint runs
inside the commit that crosses its threshold, so the writer - and with it the engine's
claim pipeline - waits for the copy, and the copy grows with the database: measured at
2,000 executions/s, commits went from 1.6 ms to over 4 ms within a minute, most of it
checkpointing. Here a dedicated connection in its own thread checkpoints PASSIVE (never
blocking a reader or a writer) shortly after writes, and the commits' own threshold is
raised to a backstop for processes that do not run this.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from gql_scheduler.store.outages import OutageLog, is_unreachable

log = logging.getLogger("gql_scheduler.store")

# Pages (of 4 KiB by default) after which a commit checkpoints by itself: only reached when
# no background checkpointer keeps the WAL short.
AUTOCHECKPOINT_BACKSTOP_PAGES = 16_384
# A WAL that grew beyond this is cut back to it when it next restarts.
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
# Short passes often: a pass's copy holds back a commit that needs the WAL's read locks for
# a while (measured: commits stalled up to 130 ms with a pass each second, 50 ms at 0.05 s).
CHECKPOINT_INTERVAL_SECONDS = 0.05


class WalCheckpointer:
    """Checkpoints `path` every `interval` seconds in which something was written."""

    def __init__(
        self,
        path: Path,
        *,
        interval: float = CHECKPOINT_INTERVAL_SECONDS,
        busy_timeout_ms: int = 10_000,
        outage: OutageLog | None = None,
    ) -> None:
        self.path = path
        self.outage = outage
        self.interval = interval
        self.busy_timeout_ms = busy_timeout_ms
        self._written = asyncio.Event()

    def note_write(self) -> None:
        """Told after each committed write transaction: there is something to copy back."""
        self._written.set()

    async def run(self) -> None:
        while True:
            await self._written.wait()
            self._written.clear()
            try:
                await asyncio.to_thread(self.checkpoint)
            except sqlite3.Error as error:  # retried after the next write
                if self.outage is not None and is_unreachable(error):
                    self.outage.failed("checkpointing the WAL", error)  # a full disk, say
                else:
                    log.exception("WAL checkpoint failed", extra={"action": "checkpoint_failed"})
            await asyncio.sleep(self.interval)

    def checkpoint(self) -> None:
        """One pass, on a connection of its own (opening one is cheap next to the copy, and
        a pass left running when the task is cancelled then shares nothing)."""
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()
