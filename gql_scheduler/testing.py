"""Fakes for tests of code that uses gql-scheduler, shipped with the package."""

from __future__ import annotations

from datetime import datetime, timedelta

from gql_scheduler.domain.clock import check_aware


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime) -> None:
        self._now = check_aware(now, "now")

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = check_aware(now, "now")

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now
