"""The one place that reads the wall clock (invariant 6).

Everything else takes `now=` or `after=`, or is handed a `Clock`, so tests control time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def check_aware(value: datetime, name: str = "datetime") -> datetime:
    """Refuse a naive datetime at a boundary: it is a bug, not an input."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value
