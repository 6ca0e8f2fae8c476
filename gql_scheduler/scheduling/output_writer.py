"""Writes a running execution's output as it is printed, so live subscribers see it.

Chunks are written in small batches, a short moment after the first one of a batch: a
shell printing a thousand lines costs a few transactions, not a thousand. Whatever is not
written yet when the run ends goes into the transaction that records the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gql_scheduler.domain.output import OutputChunk
from gql_scheduler.store.database import Database
from gql_scheduler.store.events import EventRepository
from gql_scheduler.store.output_chunks import OutputRepository

log = logging.getLogger("gql_scheduler.output")

FLUSH_DELAY_SECONDS = 0.05


class LiveOutputWriter:
    def __init__(
        self, database: Database, execution_id: str, *, delay: float = FLUSH_DELAY_SECONDS
    ) -> None:
        self.database = database
        self.execution_id = execution_id
        self.delay = delay
        self._unwritten: list[OutputChunk] = []
        self._flush: asyncio.Task[None] | None = None
        self._writing = False
        self._closed = False

    async def on_chunk(self, chunk: OutputChunk) -> None:
        """The output collector's listener: never waits for the database."""
        self._unwritten.append(chunk)
        if self._flush is None:
            self._flush = asyncio.create_task(self._write_soon())

    async def close(self) -> list[OutputChunk]:
        """Stop writing; returns the chunks still unwritten, in order, for the end record."""
        self._closed = True
        flush = self._flush
        if flush is not None:
            if self._writing:
                # A write under way finishes (bounded by the database), never half-done.
                await asyncio.gather(asyncio.shield(flush), return_exceptions=True)
            else:
                flush.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flush
        self._flush = None
        unwritten, self._unwritten = self._unwritten, []
        return unwritten

    async def _write_soon(self) -> None:
        await asyncio.sleep(self.delay)
        batch, self._unwritten = self._unwritten, []
        self._writing = True
        try:
            async with self.database.write() as connection:
                await OutputRepository(connection).insert(self.execution_id, batch)
                EventRepository(connection).signal_output(self.execution_id)
        except Exception:  # the end record writes them instead
            log.warning(
                "live output not written yet; it will be with the run's end",
                exc_info=True,
                extra={"action": "output_deferred", "execution_id": self.execution_id},
            )
            self._unwritten[:0] = batch
        finally:
            self._writing = False
            self._flush = None
        if self._unwritten and not self._closed:  # printed while this batch was written
            self._flush = asyncio.create_task(self._write_soon())
