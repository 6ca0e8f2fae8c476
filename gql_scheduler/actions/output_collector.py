"""Collects what an action prints: ordered chunks, capped in size, passed on as they come.

The cap keeps one chatty job from filling the database: past `limit_bytes` nothing more is
stored, but the dropped bytes are still counted so that the stored text can say how much is
missing. The kept output is always a prefix of what was written (no holes), cut only
between characters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from gql_scheduler.domain.output import OutputChunk, OutputStream

__all__ = ["ChunkListener", "OutputChunk", "OutputCollector"]

TRUNCATION_MARKER = "…[truncated {dropped} bytes]"


ChunkListener = Callable[[OutputChunk], Awaitable[None]]


class OutputCollector:
    """An OutputSink that keeps the chunks in order, up to `limit_bytes` of UTF-8."""

    def __init__(
        self,
        *,
        limit_bytes: int,
        now: Callable[[], datetime],
        listener: ChunkListener | None = None,
    ) -> None:
        if limit_bytes < 0:
            raise ValueError("limit_bytes must not be negative")
        self._limit = limit_bytes
        self._now = now
        self._listener = listener
        self._chunks: list[OutputChunk] = []
        self._kept_bytes = 0
        self._dropped_bytes = 0
        # A shell action writes stdout and stderr from two tasks; the lock makes the listener
        # see chunks one at a time and in seq order, as the engine persists them.
        self._lock = asyncio.Lock()

    @property
    def limit_bytes(self) -> int:
        return self._limit

    @property
    def chunks(self) -> tuple[OutputChunk, ...]:
        return tuple(self._chunks)

    @property
    def kept_bytes(self) -> int:
        return self._kept_bytes

    @property
    def dropped_bytes(self) -> int:
        return self._dropped_bytes

    @property
    def truncated(self) -> bool:
        return self._dropped_bytes > 0

    async def write(self, stream: OutputStream, text: str) -> None:
        if not text:
            return
        async with self._lock:
            kept = self._keep(text)
            if not kept:
                return
            chunk = OutputChunk(seq=len(self._chunks), stream=stream, text=kept, at=self._now())
            self._chunks.append(chunk)
            if self._listener is not None:
                await self._listener(chunk)

    def text(self) -> str:
        """All kept output, plus a last line saying how much was dropped, if anything was."""
        kept = "".join(chunk.text for chunk in self._chunks)
        if not self.truncated:
            return kept
        separator = "" if not kept or kept.endswith("\n") else "\n"
        return kept + separator + TRUNCATION_MARKER.format(dropped=self._dropped_bytes)

    def _keep(self, text: str) -> str:
        """The part of `text` that fits, counting the rest as dropped."""
        # "replace" turns a lone surrogate (possible in a handler's str) into "?" instead of
        # failing: stored output must be valid UTF-8.
        data = text.encode("utf-8", errors="replace")
        if self.truncated:
            # Once anything was dropped, later (smaller) writes are dropped too, so that the
            # kept text stays a prefix of the real output.
            self._dropped_bytes += len(data)
            return ""
        room = self._limit - self._kept_bytes
        if len(data) <= room:
            self._kept_bytes += len(data)
            return data.decode("utf-8")
        # Decoding with "ignore" drops a multi-byte character cut in half at the end.
        kept = data[:room].decode("utf-8", errors="ignore")
        kept_size = len(kept.encode("utf-8"))
        self._kept_bytes += kept_size
        self._dropped_bytes += len(data) - kept_size
        return kept
