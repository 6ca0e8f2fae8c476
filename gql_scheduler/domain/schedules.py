"""Schedule kinds and their next-run arithmetic. Pure: the caller always passes the time in.

Every instant this module returns is an aware datetime in UTC. Cron is evaluated in its IANA
timezone (see `cron.py`); an interval follows real elapsed time from its anchor, computed in
whole microseconds so that it never drifts; a one-off fires once.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gql_scheduler.domain.clock import check_aware
from gql_scheduler.domain.cron import cron_errors, parse_cron
from gql_scheduler.domain.errors import InvalidInput, UserInputError

MIN_INTERVAL_SECONDS = 0.001
# Far beyond any sensible job, yet small enough that anchor + every stays a valid datetime.
MAX_INTERVAL_SECONDS = 100 * 366 * 24 * 3600.0

_MICROSECOND = timedelta(microseconds=1)
_MICROSECONDS_PER_SECOND = 1_000_000
# Largest first: an interval is described in the largest unit that divides it exactly.
_INTERVAL_UNITS = (("hour", 3600), ("minute", 60), ("second", 1))


@dataclass(frozen=True, slots=True)
class CronSchedule:
    expression: str
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    every_seconds: float
    anchor: datetime  # required: the service fills in "now" when the user gives none

    def __post_init__(self) -> None:
        check_aware(self.anchor, "anchor")


@dataclass(frozen=True, slots=True)
class OnceSchedule:
    at: datetime

    def __post_init__(self) -> None:
        check_aware(self.at, "at")


Schedule = CronSchedule | IntervalSchedule | OnceSchedule


def validate_schedule(schedule: Schedule, *, now: datetime) -> list[UserInputError]:
    """Every problem with `schedule`, with field paths under its kind (`cron`, `interval`...)."""
    check_aware(now, "now")
    match schedule:
        case CronSchedule(expression, timezone):
            return [error.under("cron") for error in cron_errors(expression, timezone)]
        case IntervalSchedule(every_seconds):
            problem = _interval_problem(every_seconds)
            if problem is None:
                return []
            return [InvalidInput(problem, field=("interval", "every_seconds"))]
        case OnceSchedule(at):
            if at > now:
                return []
            return [InvalidInput("must be in the future", field=("once", "at"))]


def _interval_problem(every_seconds: float) -> str | None:
    if not math.isfinite(every_seconds):
        return "must be a finite number of seconds"
    if every_seconds <= 0:
        return "must be greater than 0"
    if every_seconds < MIN_INTERVAL_SECONDS:
        return f"must be at least {MIN_INTERVAL_SECONDS} seconds"
    if every_seconds > MAX_INTERVAL_SECONDS:
        return f"must be at most {MAX_INTERVAL_SECONDS:.0f} seconds (100 years)"
    return None


def next_fire_time(schedule: Schedule, *, after: datetime) -> datetime | None:
    """The schedule's first fire instant strictly after `after`, or None if it has ended."""
    check_aware(after, "after")
    match schedule:
        case CronSchedule(expression, timezone):
            return parse_cron(expression, timezone).next_after(after)
        case IntervalSchedule(every_seconds, anchor):
            return _next_interval_time(every_seconds, anchor, after)
        case OnceSchedule(at):
            return at.astimezone(UTC) if at > after else None


def _next_interval_time(every_seconds: float, anchor: datetime, after: datetime) -> datetime:
    """anchor + k * every for the least whole k >= 0 that lands strictly after `after`."""
    problem = _interval_problem(every_seconds)
    if problem is not None:  # validated on input: reaching here with a bad value is a bug
        raise ValueError(f"every_seconds {every_seconds!r} {problem}")
    anchor = anchor.astimezone(UTC)
    if anchor > after:
        return anchor
    every = _whole_microseconds(every_seconds)
    elapsed = (after - anchor) // _MICROSECOND  # exact: timedeltas are whole microseconds
    steps = elapsed // every + 1
    return anchor + timedelta(microseconds=steps * every)


def _whole_microseconds(seconds: float) -> int:
    return round(seconds * _MICROSECONDS_PER_SECOND)


def iter_fire_times(
    schedules: Sequence[Schedule],
    *,
    after: datetime,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> Iterator[datetime]:
    """The union of the schedules' fire instants, ascending and without duplicates.

    Only instants strictly after `after`, at or after `start_at` and at or before `end_at`
    (both inclusive; the iteration ends at `end_at`). Lazy, so an every-second schedule
    costs only the instants actually consumed.
    """
    check_aware(after, "after")
    if start_at is not None:
        # Instants have microsecond resolution: ">= start_at" is "> start_at - 1 µs".
        after = max(after, check_aware(start_at, "start_at") - _MICROSECOND)
    if end_at is not None:
        check_aware(end_at, "end_at")
    merged = heapq.merge(*(_fire_times(schedule, after) for schedule in schedules))
    previous: datetime | None = None
    for instant in merged:
        if end_at is not None and instant > end_at:
            return
        if instant != previous:  # two schedules hitting one instant fire once
            yield instant
        previous = instant


def _fire_times(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    instant = next_fire_time(schedule, after=after)
    while instant is not None:
        yield instant
        instant = next_fire_time(schedule, after=instant)


NextFireTime = Callable[[datetime], "datetime | None"]


def compile_next_fire_time(schedule: Schedule) -> NextFireTime:
    """`next_fire_time` for one schedule with its checks and conversions done once: what a
    timer calls twice per fire, for as long as the job lives."""
    match schedule:
        case CronSchedule(expression, timezone):
            return parse_cron(expression, timezone).next_after
        case IntervalSchedule(every_seconds, anchor):
            problem = _interval_problem(every_seconds)
            if problem is not None:
                raise ValueError(f"every_seconds {every_seconds!r} {problem}")
            return functools.partial(
                _next_on_grid, anchor.astimezone(UTC), _whole_microseconds(every_seconds)
            )
        case OnceSchedule(at):
            instant = at.astimezone(UTC)
            return lambda after: instant if instant > after else None


def _next_on_grid(anchor: datetime, every: int, after: datetime) -> datetime:
    if anchor > after:
        return anchor
    steps = (after - anchor) // _MICROSECOND // every + 1
    return anchor + timedelta(microseconds=steps * every)


class Timeline:
    """Schedules and their bounds, compiled once for repeated next-run questions (a timer
    asks twice per fire, for as long as its job lives)."""

    def __init__(
        self,
        schedules: Sequence[Schedule],
        *,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> None:
        self._next_times = [compile_next_fire_time(schedule) for schedule in schedules]
        self._not_before = None if start_at is None else start_at - _MICROSECOND
        self._end_at = end_at

    def next_after(self, after: datetime) -> datetime | None:
        """`iter_fire_times`' first item, without its generators."""
        if self._not_before is not None:
            after = max(after, self._not_before)
        candidates = [next_time(after) for next_time in self._next_times]
        earliest = min((c for c in candidates if c is not None), default=None)
        if earliest is None or (self._end_at is not None and earliest > self._end_at):
            return None
        return earliest


def next_run_after(
    schedules: Sequence[Schedule],
    *,
    after: datetime,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> datetime | None:
    check_aware(after, "after")
    return Timeline(schedules, start_at=start_at, end_at=end_at).next_after(after)


def upcoming_runs(
    schedules: Sequence[Schedule],
    *,
    after: datetime,
    count: int,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> list[datetime]:
    """The next `count` fire instants of the union (fewer if the schedules end sooner)."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    instants = iter_fire_times(schedules, after=after, start_at=start_at, end_at=end_at)
    return list(itertools.islice(instants, count))


def jitter_offset(job_id: str, scheduled_for: datetime, jitter_seconds: float) -> timedelta:
    """A delay in [0, jitter_seconds) that every instance derives alike for one occurrence.

    It is a hash of the job and the instant rather than a random draw, so that instances
    agree without talking to each other, while occurrences still spread out.
    """
    check_aware(scheduled_for, "scheduled_for")
    if not math.isfinite(jitter_seconds) or jitter_seconds < 0:
        raise ValueError(f"jitter_seconds must be a finite number >= 0, got {jitter_seconds!r}")
    # Floor, so that the largest possible delay stays below jitter_seconds.
    span = math.floor(jitter_seconds * _MICROSECONDS_PER_SECOND)
    if span == 0:
        return timedelta(0)
    occurrence = f"{job_id}\x00{scheduled_for.astimezone(UTC).isoformat()}".encode()
    digest = hashlib.sha256(occurrence).digest()
    # 64 bits modulo at most ~2**50 microseconds: the bias is far below one part in 1000.
    return timedelta(microseconds=int.from_bytes(digest[:8], "big") % span)


def describe_schedule(schedule: Schedule) -> str:
    """A short English description: "At 09:00 (Europe/Berlin)", "Every 5 minutes from ..."."""
    match schedule:
        case CronSchedule(expression, timezone):
            return parse_cron(expression, timezone).describe()
        case IntervalSchedule(every_seconds, anchor):
            return f"Every {_describe_every(every_seconds)} from {_iso_utc(anchor)}"
        case OnceSchedule(at):
            return f"Once at {_iso_utc(at)}"


def _describe_every(every_seconds: float) -> str:
    microseconds = _whole_microseconds(every_seconds)
    for unit, unit_seconds in _INTERVAL_UNITS:
        count, remainder = divmod(microseconds, unit_seconds * _MICROSECONDS_PER_SECOND)
        if remainder == 0:
            return unit if count == 1 else f"{count} {unit}s"
    # Decimal prints 1.5 and 0.25 exactly, with neither float noise nor an exponent.
    seconds = Decimal(microseconds).scaleb(-6).normalize()
    return f"{seconds:f} seconds"


def _iso_utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def schedule_to_dict(schedule: Schedule) -> dict[str, str | float]:
    """A JSON-safe storage form; `schedule_from_dict` reads it back exactly."""
    match schedule:
        case CronSchedule(expression, timezone):
            return {"kind": "cron", "expression": expression, "timezone": timezone}
        case IntervalSchedule(every_seconds, anchor):
            return {
                "kind": "interval",
                "every_seconds": every_seconds,
                "anchor": anchor.isoformat(),
            }
        case OnceSchedule(at):
            return {"kind": "once", "at": at.isoformat()}


def schedule_from_dict(data: Mapping[str, object]) -> Schedule:
    """Read the storage form back; raise ValueError on a malformed record."""
    kind = data.get("kind")
    if kind == "cron":
        return CronSchedule(_text(data, "expression"), _text(data, "timezone"))
    if kind == "interval":
        return IntervalSchedule(_number(data, "every_seconds"), _instant(data, "anchor"))
    if kind == "once":
        return OnceSchedule(_instant(data, "at"))
    raise ValueError(f"unknown schedule kind {kind!r}")


def _text(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"schedule {key!r} must be a string, got {value!r}")
    return value


def _number(data: Mapping[str, object], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"schedule {key!r} must be a number, got {value!r}")
    return float(value)


def _instant(data: Mapping[str, object], key: str) -> datetime:
    return check_aware(datetime.fromisoformat(_text(data, key)), key)
