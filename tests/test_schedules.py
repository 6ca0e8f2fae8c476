"""Cron parsing, DST rules, intervals, one-offs, unions, jitter, descriptions and storage.

Time is always passed in; expected instants are written in UTC.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gql_scheduler.domain.cron import CronExpression, parse_cron
from gql_scheduler.domain.errors import InvalidInput
from gql_scheduler.domain.schedules import (
    CronSchedule,
    IntervalSchedule,
    OnceSchedule,
    Schedule,
    describe_schedule,
    iter_fire_times,
    jitter_offset,
    next_fire_time,
    next_run_after,
    schedule_from_dict,
    schedule_to_dict,
    upcoming_runs,
    validate_schedule,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # a Sunday
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"  # moves its clocks by 30 minutes


def utc(text: str) -> datetime:
    """An instant in UTC from "YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def runs(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    return upcoming_runs([CronSchedule(expression, timezone)], after=after, count=count)


# --- cron: fields, names, aliases -------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 9 * * 1", utc("2026-11-22"), utc("2026-11-23 09:00")),  # Sunday -> Monday
        ("0 9 * * 0", utc("2026-11-23"), utc("2026-11-29 09:00")),  # 0 = Sunday
        ("0 9 * * 7", utc("2026-11-23"), utc("2026-11-29 09:00")),  # 7 = Sunday too
        ("0 9 * * 0", utc("2026-11-22"), utc("2026-11-22 09:00")),
        ("0 9 * * 5-7", utc("2026-11-23"), utc("2026-11-27 09:00")),  # Fri..Sun
        ("0 9 * * MON-FRI", utc("2026-11-27 10:00"), utc("2026-11-30 09:00")),  # Fri -> Mon
        ("0 9 * * mon-fri", utc("2026-11-27 10:00"), utc("2026-11-30 09:00")),
        ("0 9 * * Sat,sun", utc("2026-11-23"), utc("2026-11-28 09:00")),
        ("0 0 1 JAN *", utc("2026-11-22"), utc("2027-01-01")),
        ("0 0 1 jan-feb *", utc("2027-01-01"), utc("2027-02-01")),
        ("*/15 9-17 * * *", utc("2026-11-22 17:45"), utc("2026-11-23 09:00")),
        ("5,35 * * * *", utc("2026-11-22 10:05"), utc("2026-11-22 10:35")),
        ("0 0 29 2 *", utc("2026-11-22"), utc("2028-02-29")),  # leap day only
        ("0 9 1 * MON", utc("2026-11-22"), utc("2026-11-23 09:00")),  # day-of-month OR weekday
        ("0 9 * * *", utc("2026-11-22 09:00"), utc("2026-11-23 09:00")),  # strictly after
        ("0 9 * * *", utc("2026-11-22 08:59:59.999999"), utc("2026-11-22 09:00")),
    ],
)
def test_cron_fields(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_cron(expression, "UTC").next_after(after) == expected


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@hourly", utc("2026-11-22 11:00")),
        ("@daily", utc("2026-11-23")),
        ("@midnight", utc("2026-11-23")),
        ("@weekly", utc("2026-11-29")),  # Sunday midnight
        ("@monthly", utc("2026-12-01")),
        ("@yearly", utc("2027-01-01")),
        ("@annually", utc("2027-01-01")),
        ("@DAILY", utc("2026-11-23")),
    ],
)
def test_aliases(alias: str, expected: datetime) -> None:
    assert parse_cron(alias, "UTC").next_after(utc("2026-11-22 10:30")) == expected


def test_six_fields_put_seconds_first() -> None:
    ten_seconds = [utc("2026-11-23 09:00") + timedelta(seconds=n) for n in range(0, 60, 10)]
    assert runs("*/10 0 9 * * MON-FRI", "UTC", utc("2026-11-22"), 7) == [
        *ten_seconds,
        utc("2026-11-24 09:00"),
    ]
    # Second 30 of minute 0, not second 0 of minute 30.
    assert runs("30 0 0 * * *", "UTC", utc("2026-11-22"), 2) == [
        utc("2026-11-22 00:00:30"),
        utc("2026-11-23 00:00:30"),
    ]
    assert parse_cron("0 0 9 ? * MON", "UTC").next_after(NOW) == utc("2026-11-23 09:00")


def test_parsed_expression_is_normalized_and_cached() -> None:
    cron = parse_cron("  0   9 * *  1 ", "Europe/Berlin")
    assert cron.expression == "0 9 * * 1"
    assert cron.timezone == "Europe/Berlin"
    assert not cron.has_seconds
    assert parse_cron("*/10 0 9 * * MON-FRI", "UTC").has_seconds
    assert parse_cron("@Daily", "UTC").expression == "@daily"
    assert parse_cron("0 9 * * 1", "UTC") is parse_cron("0 9 * * 1", "UTC")


@pytest.mark.parametrize(
    ("expression", "fixed"),
    [
        ("30 2 * * *", True),
        ("0 1-3 * * *", True),
        ("0,30 9,17 * * *", True),
        ("*/10 30 1 * * *", True),  # the seconds field does not count
        ("@daily", True),
        ("0 * * * *", False),
        ("*/30 * * * *", False),
        ("30 */2 * * *", False),
        ("* 2 * * *", False),
        ("@hourly", False),
    ],
)
def test_is_fixed(expression: str, fixed: bool) -> None:
    assert parse_cron(expression, "UTC").is_fixed is fixed


# --- cron: refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("* * * *", "got 4"),
        ("0 0 9 * * * 2026", "got 7"),
        ("60 * * * *", "minute field: 60 is out of range 0-59"),
        ("* 24 * * *", "hour field: 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("* * 32 * *", "day-of-month field: 32 is out of range 1-31"),
        ("* * * 13 *", "month field: 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week field: 8 is out of range 0-7"),
        ("60 0 9 * * *", "second field: 60 is out of range 0-59"),
        ("0 9-25 * * *", "hour field: 25 is out of range 0-23"),
        ("H * * * *", "Jenkins-style H"),
        ("H/15 * * * *", "Jenkins-style H"),
        ("0 H(0-6) * * *", "Jenkins-style H"),
        ("R * * * *", "random R"),
        ("*/0 * * * *", "step '0'"),
        ("*/x * * * *", "step 'x'"),
        ("-5 * * * *", "negative values"),
        ("1,,2 * * * *", "empty item"),
        ("1-2-3 * * * *", "'1-2-3'"),
        ("MON * * * *", "minute field: 'MON' is not a number"),
        ("* * * * FOO", "day-of-week field: 'FOO' is not a number or a name"),
        ("* * * BAR *", "month field: 'BAR'"),
        ("? * * * *", "'?' is only allowed"),
        ("* * L * *", "Quartz L, W and # are not supported"),
        ("* * * * 5#3", "Quartz L, W and # are not supported"),
        ("@reboot", "not a known alias"),
        ("@daily 5", "not a known alias"),
        ("0 0 30 2 *", "can never fire: day 30 never occurs in February"),
        ("0 0 31 4,6,9,11 *", "day 31 never occurs in April, June, September, November"),
    ],
)
def test_invalid_cron_is_refused_readably(expression: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_cron(expression, "UTC")
    assert caught.value.field == ("expression",)
    assert message in caught.value.message
    assert "Error(" not in caught.value.message
    assert "Traceback" not in caught.value.message


def test_february_30th_fires_when_a_weekday_is_also_given() -> None:
    # Day of month and day of week are OR-ed when both are restricted, as in every cron.
    assert parse_cron("0 0 30 2 MON", "UTC").next_after(NOW) == utc("2027-02-01")


@pytest.mark.parametrize("zone", ["", " ", "Mars/Olympus_Mons", "America", "../etc/passwd", "utc"])
def test_unknown_timezone_is_refused(zone: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_cron("0 9 * * *", zone)
    assert caught.value.field == ("timezone",)
    assert "IANA" in caught.value.message


def test_validate_cron_reports_expression_and_timezone_together() -> None:
    errors = validate_schedule(CronSchedule("61 * * * *", "Nowhere/City"), now=NOW)
    assert [error.field for error in errors] == [("cron", "expression"), ("cron", "timezone")]
    assert "minute field: 61 is out of range 0-59" in errors[0].message
    assert validate_schedule(CronSchedule("0 9 * * MON", "Asia/Kolkata"), now=NOW) == []


# --- cron: timezones and DST ----------------------------------------------------------
# Europe/Berlin 2026: spring 03-29 02:00 CET -> 03:00 CEST (01:00Z); autumn 10-25 03:00 CEST
# -> 02:00 CET (01:00Z). America/New_York 2026: spring 03-08 02:00 EST -> 03:00 EDT (07:00Z);
# autumn 11-01 02:00 EDT -> 01:00 EST (06:00Z).


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Skipped 02:30 runs once, at 03:00 CEST; the next day is normal again.
        ("30 2 * * *", BERLIN, "2026-03-28 12:00", ["2026-03-29 01:00", "2026-03-30 00:30"]),
        # Repeated 02:30 runs at its first pass (+02:00) only.
        ("30 2 * * *", BERLIN, "2026-10-24 12:00", ["2026-10-25 00:30", "2026-10-26 01:30"]),
        # `after` between the two passes: the next run is the next day.
        ("30 2 * * *", BERLIN, "2026-10-25 00:45", ["2026-10-26 01:30"]),
        ("30 2 * * *", NEW_YORK, "2026-03-07 12:00", ["2026-03-08 07:00", "2026-03-09 06:30"]),
        ("30 1 * * *", NEW_YORK, "2026-10-31 12:00", ["2026-11-01 05:30", "2026-11-02 06:30"]),
        ("30 1 * * *", NEW_YORK, "2026-11-01 05:45", ["2026-11-02 06:30"]),
        ("30 1 * * *", NEW_YORK, "2026-11-01 06:15", ["2026-11-02 06:30"]),
        # A range is fixed too: 01:00 runs once (EDT), 02:00 exists once (EST).
        ("0 1-2 * * *", NEW_YORK, "2026-10-31 12:00", ["2026-11-01 05:00", "2026-11-01 07:00"]),
        ("0 30 1 * * *", NEW_YORK, "2026-11-01 05:00", ["2026-11-01 05:30", "2026-11-02 06:30"]),
        # Lord Howe moves its clocks by 30 minutes. 2026-04-05: 02:00 +11 -> 01:30 +10:30.
        ("45 1 * * *", LORD_HOWE, "2026-04-04 00:00", ["2026-04-04 14:45", "2026-04-05 15:15"]),
        # 2026-10-04: 02:00 +10:30 -> 02:30 +11, so 02:15 is skipped and runs at 02:30.
        ("15 2 * * *", LORD_HOWE, "2026-10-03 00:00", ["2026-10-03 15:30", "2026-10-04 15:15"]),
    ],
)
def test_fixed_job_fires_once_on_dst_nights(
    expression: str, zone: str, after: str, expected: list[str]
) -> None:
    assert runs(expression, zone, utc(after), len(expected)) == [utc(text) for text in expected]


@pytest.mark.parametrize(
    ("expression", "zone", "after", "first", "step_minutes", "count"),
    [
        # Autumn: both passes of the repeated hour, so the spacing in real time stays even.
        ("*/30 * * * *", BERLIN, "2026-10-25 00:10", "2026-10-25 00:30", 30, 5),
        ("*/30 * * * *", NEW_YORK, "2026-11-01 04:50", "2026-11-01 05:00", 30, 6),
        ("0 * * * *", NEW_YORK, "2026-11-01 04:10", "2026-11-01 05:00", 60, 4),
        ("0 * * * *", BERLIN, "2026-10-24 23:10", "2026-10-25 00:00", 60, 4),
        ("*/15 * * * *", LORD_HOWE, "2026-04-04 14:20", "2026-04-04 14:30", 15, 5),
        # Spring: the skipped hour has no instants, so nothing runs in it, nothing catches up.
        ("0 * * * *", BERLIN, "2026-03-28 23:10", "2026-03-29 00:00", 60, 4),
        ("*/30 * * * *", NEW_YORK, "2026-03-08 06:10", "2026-03-08 06:30", 30, 4),
    ],
)
def test_wildcard_job_follows_real_time_on_dst_nights(
    expression: str, zone: str, after: str, first: str, step_minutes: int, count: int
) -> None:
    fire_times = runs(expression, zone, utc(after), count)
    step = timedelta(minutes=step_minutes)
    assert fire_times == [utc(first) + n * step for n in range(count)]
    wall_times = {instant.astimezone(ZoneInfo(zone)).strftime("%H:%M") for instant in fire_times}
    if utc(after).month == 3:
        assert not any(wall.startswith("02:") for wall in wall_times)
    else:  # a repeated wall time ran twice
        assert len(wall_times) < count


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("0 9 * * *", "Asia/Kolkata", "2026-11-22 00:00", "2026-11-22 03:30"),
        ("0 0 * * *", "Asia/Kolkata", "2026-11-22 00:00", "2026-11-22 18:30"),
        ("0 9 * * MON", BERLIN, "2026-11-22 00:00", "2026-11-23 08:00"),
        ("0 9 * * MON", NEW_YORK, "2026-07-01 00:00", "2026-07-06 13:00"),
        ("0 9 * * MON", LORD_HOWE, "2026-11-22 00:00", "2026-11-22 22:00"),
    ],
)
def test_other_timezones(expression: str, zone: str, after: str, expected: str) -> None:
    assert parse_cron(expression, zone).next_after(utc(after)) == utc(expected)


def test_next_after_takes_any_aware_datetime_and_returns_utc() -> None:
    cron = parse_cron("0 9 * * *", "Europe/Berlin")
    after_in_tokyo = datetime(2026, 11, 22, 18, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 09:00Z
    next_run = cron.next_after(after_in_tokyo)
    assert next_run == utc("2026-11-23 08:00")
    assert next_run is not None
    assert next_run.tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        cron.next_after(datetime(2026, 11, 22, 9))


# --- intervals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "anchor", "after", "expected"),
    [
        (60.0, utc("2026-12-01"), NOW, utc("2026-12-01")),  # anchor ahead: the anchor itself
        (60.0, NOW, NOW, NOW + timedelta(minutes=1)),  # strictly after
        (30.0, utc("2026-11-22 09:00"), utc("2026-11-22 10:01:15"), utc("2026-11-22 10:01:30")),
        (30.0, utc("2026-11-22 09:00"), utc("2026-11-22 10:01:30"), utc("2026-11-22 10:02")),
        (0.25, NOW, NOW + timedelta(milliseconds=100), NOW + timedelta(milliseconds=250)),
        (0.001, NOW, NOW + timedelta(microseconds=1500), NOW + timedelta(milliseconds=2)),
        (86400.0, utc("2020-01-01 07:00"), NOW, utc("2026-11-23 07:00")),
    ],
)
def test_interval_next(every: float, anchor: datetime, after: datetime, expected: datetime) -> None:
    assert next_fire_time(IntervalSchedule(every, anchor), after=after) == expected


def test_interval_does_not_drift_over_100000_steps() -> None:
    schedule = IntervalSchedule(0.1, NOW)
    instants = upcoming_runs([schedule], after=NOW, count=100_000)
    assert instants[-1] == NOW + timedelta(seconds=10_000)  # exactly, to the microsecond
    third = IntervalSchedule(1 / 3, NOW)  # 333333 µs
    far = next_fire_time(third, after=NOW + timedelta(microseconds=333_333 * 100_000 - 1))
    assert far == NOW + timedelta(microseconds=333_333 * 100_000)


def test_interval_follows_real_time_across_dst() -> None:
    berlin_anchor = datetime(2026, 10, 24, 12, tzinfo=ZoneInfo("Europe/Berlin"))
    instants = upcoming_runs(
        [IntervalSchedule(3600, berlin_anchor)], after=utc("2026-10-24 23:30"), count=4
    )
    assert instants == [utc("2026-10-25") + timedelta(hours=n) for n in range(4)]


@pytest.mark.parametrize(
    ("every", "message"),
    [
        (0.0, "greater than 0"),
        (-5.0, "greater than 0"),
        (0.0005, "at least 0.001"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (1e12, "at most"),
    ],
)
def test_bad_interval_is_refused(every: float, message: str) -> None:
    errors = validate_schedule(IntervalSchedule(every, NOW), now=NOW)
    assert [error.field for error in errors] == [("interval", "every_seconds")]
    assert message in errors[0].message
    with pytest.raises(ValueError, match=message):
        next_fire_time(IntervalSchedule(every, NOW), after=NOW)


def test_good_interval_is_accepted() -> None:
    assert validate_schedule(IntervalSchedule(0.001, NOW), now=NOW) == []
    assert validate_schedule(IntervalSchedule(3600, NOW - timedelta(days=9)), now=NOW) == []


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 11, 22, 10)
    with pytest.raises(ValueError, match="anchor"):
        IntervalSchedule(60, naive)
    with pytest.raises(ValueError, match="at"):
        OnceSchedule(naive)
    with pytest.raises(ValueError, match="after"):
        next_fire_time(CronSchedule("* * * * *"), after=naive)
    with pytest.raises(ValueError, match="now"):
        validate_schedule(CronSchedule("* * * * *"), now=naive)
    with pytest.raises(ValueError, match="end_at"):
        list(iter_fire_times([], after=NOW, end_at=naive))


# --- one-off --------------------------------------------------------------------------


@pytest.mark.parametrize("at", [NOW - timedelta(days=1), NOW, NOW - timedelta(microseconds=1)])
def test_once_in_the_past_is_refused(at: datetime) -> None:
    errors = validate_schedule(OnceSchedule(at), now=NOW)
    assert [error.field for error in errors] == [("once", "at")]
    assert "must be in the future" in errors[0].message


def test_once_in_the_future() -> None:
    at = datetime(2026, 12, 1, 10, tzinfo=ZoneInfo("Europe/Berlin"))
    schedule = OnceSchedule(at)
    assert validate_schedule(schedule, now=NOW) == []
    next_run = next_fire_time(schedule, after=NOW)
    assert next_run == utc("2026-12-01 09:00")
    assert next_run is not None
    assert next_run.tzinfo is UTC
    assert next_fire_time(schedule, after=at) is None
    assert upcoming_runs([schedule], after=NOW, count=5) == [utc("2026-12-01 09:00")]


# --- unions and bounds ----------------------------------------------------------------


def test_union_has_no_duplicates_and_stays_sorted() -> None:
    schedules: list[Schedule] = [
        CronSchedule("0 * * * *"),
        IntervalSchedule(1800, utc("2026-01-01")),  # shares every hour with the cron
        CronSchedule("0 * * * *"),  # the same schedule twice
        OnceSchedule(utc("2026-11-22 11:15")),
    ]
    assert upcoming_runs(schedules, after=utc("2026-11-22 10:10"), count=5) == [
        utc("2026-11-22 10:30"),
        utc("2026-11-22 11:00"),
        utc("2026-11-22 11:15"),
        utc("2026-11-22 11:30"),
        utc("2026-11-22 12:00"),
    ]


def test_union_of_different_timezones_is_in_instant_order() -> None:
    schedules: list[Schedule] = [
        CronSchedule("0 9 * * *", "America/New_York"),  # 14:00Z
        CronSchedule("0 9 * * *", "Asia/Kolkata"),  # 03:30Z
        CronSchedule("0 9 * * *", "Europe/Berlin"),  # 08:00Z
    ]
    assert upcoming_runs(schedules, after=utc("2026-11-22"), count=4) == [
        utc("2026-11-22 03:30"),
        utc("2026-11-22 08:00"),
        utc("2026-11-22 14:00"),
        utc("2026-11-23 03:30"),
    ]


def test_start_and_end_bounds_are_inclusive() -> None:
    hourly: list[Schedule] = [CronSchedule("0 * * * *")]
    instants = upcoming_runs(
        hourly,
        after=NOW,
        count=10,
        start_at=utc("2026-11-22 12:00"),
        end_at=utc("2026-11-22 14:00"),
    )
    assert instants == [utc("2026-11-22 12:00"), utc("2026-11-22 13:00"), utc("2026-11-22 14:00")]
    # `after` still wins when it is later than start_at, and stays exclusive.
    later = upcoming_runs(hourly, after=utc("2026-11-22 12:00"), count=2, start_at=NOW)
    assert later == [utc("2026-11-22 13:00"), utc("2026-11-22 14:00")]


def test_generator_ends_at_end_at() -> None:
    every_second: list[Schedule] = [IntervalSchedule(1, NOW)]
    instants = list(iter_fire_times(every_second, after=NOW, end_at=NOW + timedelta(seconds=5)))
    assert instants == [NOW + timedelta(seconds=n) for n in range(1, 6)]
    assert list(iter_fire_times([], after=NOW)) == []


def test_upcoming_runs_is_lazy_on_a_fast_schedule() -> None:
    every_second: list[Schedule] = [CronSchedule("* * * * * *"), IntervalSchedule(0.001, NOW)]
    assert len(upcoming_runs(every_second, after=NOW, count=5)) == 5
    assert upcoming_runs(every_second, after=NOW, count=0) == []


# --- jitter ---------------------------------------------------------------------------


def test_jitter_is_deterministic_and_in_range() -> None:
    occurrences = [NOW + timedelta(minutes=n) for n in range(200)]
    offsets = [jitter_offset("job-1", instant, 30) for instant in occurrences]
    assert offsets == [jitter_offset("job-1", instant, 30) for instant in occurrences]
    assert all(timedelta(0) <= offset < timedelta(seconds=30) for offset in offsets)
    assert len(set(offsets)) > 190  # occurrences spread out
    assert offsets != [jitter_offset("job-2", instant, 30) for instant in occurrences]
    same_instant = NOW.astimezone(ZoneInfo("Asia/Kolkata"))
    assert jitter_offset("job-1", same_instant, 30) == jitter_offset("job-1", NOW, 30)


def test_jitter_zero() -> None:
    assert jitter_offset("job-1", NOW, 0) == timedelta(0)
    assert jitter_offset("job-1", NOW, 0.0000001) == timedelta(0)  # below one microsecond
    assert 0 <= jitter_offset("job-1", NOW, 0.000002) / timedelta(microseconds=1) < 2
    with pytest.raises(ValueError, match="jitter_seconds"):
        jitter_offset("job-1", NOW, -1)


# --- descriptions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "description"),
    [
        (CronSchedule("0 9 * * 1", "Europe/Berlin"), "At 09:00, only on Monday (Europe/Berlin)"),
        (CronSchedule("0 9 * * 0"), "At 09:00, only on Sunday"),
        (CronSchedule("0 9 * * 7"), "At 09:00, only on Sunday"),
        (CronSchedule("0 17 * * MON-FRI"), "At 17:00, Monday through Friday"),
        (CronSchedule("30 0 0 * * *"), "At 00:00:30"),
        (CronSchedule("0 0 9 * * 1"), "At 09:00, only on Monday"),
        (CronSchedule("@daily"), "At 00:00"),
        (CronSchedule("@hourly", "Asia/Kolkata"), "Every hour (Asia/Kolkata)"),
        (CronSchedule("*/5 * * * *"), "Every 5 minutes"),
        (
            CronSchedule("0 9 * * 1/2"),
            "At 09:00, every 2 days of the week, Monday through Saturday",
        ),
        (IntervalSchedule(30, NOW), "Every 30 seconds from 2026-11-22T10:00:00Z"),
        (IntervalSchedule(1.5, NOW), "Every 1.5 seconds from 2026-11-22T10:00:00Z"),
        (IntervalSchedule(0.25, NOW), "Every 0.25 seconds from 2026-11-22T10:00:00Z"),
        (IntervalSchedule(90, NOW), "Every 90 seconds from 2026-11-22T10:00:00Z"),
        (IntervalSchedule(300, NOW), "Every 5 minutes from 2026-11-22T10:00:00Z"),
        (IntervalSchedule(7200, NOW), "Every 2 hours from 2026-11-22T10:00:00Z"),
        (IntervalSchedule(3600, NOW), "Every hour from 2026-11-22T10:00:00Z"),
        (IntervalSchedule(1, NOW), "Every second from 2026-11-22T10:00:00Z"),
        (
            OnceSchedule(datetime(2026, 12, 1, 10, tzinfo=ZoneInfo("Europe/Berlin"))),
            "Once at 2026-12-01T09:00:00Z",
        ),
    ],
)
def test_describe(schedule: Schedule, description: str) -> None:
    assert describe_schedule(schedule) == description


def test_describe_six_fields() -> None:
    description = parse_cron("*/10 0 9 * * MON-FRI", "UTC").describe()
    assert description.startswith("Every 10 seconds")
    assert "09:00" in description
    assert "Monday through Friday" in description


# --- storage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        CronSchedule("*/10 0 9 * * MON-FRI", "Europe/Berlin"),
        CronSchedule("@daily"),
        IntervalSchedule(0.25, datetime(2026, 11, 22, 10, 0, 0, 123_456, tzinfo=UTC)),
        IntervalSchedule(
            30, datetime(2026, 11, 22, 15, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        ),
        OnceSchedule(datetime(2026, 12, 1, 10, 0, 0, 1, tzinfo=ZoneInfo("Europe/Berlin"))),
    ],
)
def test_dict_round_trip(schedule: Schedule) -> None:
    stored = json.loads(json.dumps(schedule_to_dict(schedule)))
    restored = schedule_from_dict(stored)
    assert restored == schedule
    assert type(restored) is type(schedule)
    if isinstance(schedule, IntervalSchedule):
        assert isinstance(restored, IntervalSchedule)
        assert restored.anchor.utcoffset() == schedule.anchor.utcoffset()
        assert restored.anchor.microsecond == schedule.anchor.microsecond


def test_dict_form() -> None:
    assert schedule_to_dict(OnceSchedule(utc("2026-12-01 09:00"))) == {
        "kind": "once",
        "at": "2026-12-01T09:00:00+00:00",
    }
    assert schedule_to_dict(CronSchedule("0 9 * * *"))["kind"] == "cron"


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "weekly"},
        {"kind": "cron", "expression": 5, "timezone": "UTC"},
        {"kind": "interval", "every_seconds": "30", "anchor": "2026-11-22T10:00:00+00:00"},
        {"kind": "interval", "every_seconds": True, "anchor": "2026-11-22T10:00:00+00:00"},
        {"kind": "once", "at": "2026-11-22T10:00:00"},  # naive
        {"kind": "once", "at": "yesterday"},
    ],
)
def test_malformed_dict_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each record fails for its own reason
        schedule_from_dict(data)


def test_cron_expression_type_is_exported() -> None:
    assert isinstance(parse_cron("@daily", "UTC"), CronExpression)


@pytest.mark.parametrize(
    ("items", "after", "start_at", "end_at"),
    [
        (
            [CronSchedule("0 9 * * 1"), CronSchedule("30 8 * * *")],
            utc("2026-11-22 00:00:00"),
            None,
            None,
        ),
        (
            [
                IntervalSchedule(7.5, utc("2026-01-01 00:00:00")),
                OnceSchedule(utc("2026-11-22 00:00:03")),
            ],
            utc("2026-11-22 00:00:00"),
            None,
            None,
        ),
        ([CronSchedule("* * * * *")], utc("2026-11-22 00:00:00"), utc("2026-11-23 05:00:00"), None),
        ([CronSchedule("0 0 * * *")], utc("2026-11-22 00:00:00"), None, utc("2026-11-22 12:00:00")),
        ([OnceSchedule(utc("2026-11-21 00:00:00"))], utc("2026-11-22 00:00:00"), None, None),
    ],
)
def test_next_run_after_is_the_first_upcoming_run(
    items: list[Schedule],
    after: datetime,
    start_at: datetime | None,
    end_at: datetime | None,
) -> None:
    expected = upcoming_runs(items, after=after, count=1, start_at=start_at, end_at=end_at)
    found = next_run_after(items, after=after, start_at=start_at, end_at=end_at)
    assert found == (expected[0] if expected else None)
