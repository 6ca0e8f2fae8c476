"""Cron expressions: parsing with readable errors, next fire time in an IANA zone, description.

croniter does the calendar arithmetic and cron-descriptor the wording; this module adds what
they lack: messages a user can act on, refusal of syntax we do not support (Jenkins `H`,
Quartz `L`/`W`/`#`), and the Vixie cron rule for a fixed-time job in a repeated hour.
"""

from __future__ import annotations

import calendar
import copy
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import Options, get_description
from croniter import (  # type: ignore[import-untyped, unused-ignore]
    CroniterBadDateError,
    croniter,
)

from gql_scheduler.domain.clock import check_aware
from gql_scheduler.domain.errors import InvalidInput, UserInputError

ALIASES: Mapping[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Cached entries hold a croniter object each: bounded, but large enough for a server whose
# 100,000 jobs mostly share a few thousand distinct (expression, timezone) pairs.
_PARSE_CACHE_SIZE = 16_384
_NEXT_CACHE_SIZE = 4_096

_EXPRESSION_FIELD = ("expression",)
_TIMEZONE_FIELD = ("timezone",)

# English, not `calendar.month_name`: that one follows the process locale.
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTH_NAMES = {name[:3].upper(): number for number, name in enumerate(_MONTHS, start=1)}
_DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
# Days a month can have at most (February in a leap year), to spot `0 0 30 2 *`.
_LONGEST_MONTH = {
    month: 29 if month == 2 else calendar.monthrange(2001, month)[1] for month in range(1, 13)
}
# Jenkins `H` and croniter's random `R`: neither is deterministic from the text alone.
_HASH_ITEM = re.compile(r"^[HR](?:$|[(/])", re.IGNORECASE)
_ITEM = re.compile(r"^(?P<base>[^/]*)(?:/(?P<step>.*))?$")


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)
    # Quartz/Spring users write `?` for "no specific value"; croniter reads it as `*`.
    allows_question_mark: bool = False


_FIVE_FIELDS = (
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day-of-month", 1, 31, allows_question_mark=True),
    _FieldSpec("month", 1, 12, _MONTH_NAMES),
    _FieldSpec("day-of-week", 0, 7, _DAY_NAMES, allows_question_mark=True),
)
_SIX_FIELDS = (_FieldSpec("second", 0, 59), *_FIVE_FIELDS)
_FIELD_COUNT_HELP = (
    "a cron expression has 5 fields (minute hour day-of-month month day-of-week) "
    "or 6 with seconds first"
)


class _Croniter(Protocol):
    """The part of croniter we use (croniter ships no type information)."""

    expanded: list[list[int | str]]

    def get_next(self, ret_type: type[datetime], start_time: datetime) -> datetime: ...


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression bound to an IANA timezone. Build it with `parse_cron`."""

    expression: str  # as written, whitespace collapsed, an alias lower-cased
    timezone: str
    has_seconds: bool
    fields: tuple[str, ...]  # aliases expanded, `?` read as `*`; seconds first if any
    _zone: ZoneInfo = field(repr=False, compare=False)
    _template: _Croniter = field(repr=False, compare=False)

    @property
    def is_fixed(self) -> bool:
        """Whether minute and hour are both fixed: Vixie cron's test for its DST rules."""
        minute, hour = self.fields[-5:-3]
        return not minute.startswith("*") and not hour.startswith("*")

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire instant strictly after `after`, in UTC; None if there is none."""
        check_aware(after, "after")
        return _next_after_utc(self, after.astimezone(UTC))

    def describe(self) -> str:
        """A sentence such as "At 09:00, only on Monday (Europe/Berlin)"."""
        text = _describe_fields(self.fields, self.has_seconds) or self.expression
        return text if self.timezone == "UTC" else f"{text} ({self.timezone})"

    def _next_local(self, after: datetime) -> datetime | None:
        # croniter objects are stateful: work on a shallow copy so that a cached expression
        # is safe to share. The copy skips croniter's costly parsing.
        iterator = copy.copy(self._template)
        try:
            return iterator.get_next(datetime, start_time=after.astimezone(self._zone))
        except CroniterBadDateError:  # no match within croniter's 50-year search window
            return None


def parse_cron(expression: str, timezone: str) -> CronExpression:
    """Parse and validate, or raise `InvalidInput` with field `expression` or `timezone`."""
    return _parse_cron_cached(expression, timezone)


def cron_errors(expression: str, timezone: str) -> list[UserInputError]:
    """Every problem with the pair, so that a client sees the expression and zone errors."""
    errors: list[UserInputError] = []
    try:
        parse_cron(expression, "UTC")
    except InvalidInput as error:
        errors.append(error)
    try:
        _load_zone(timezone)
    except InvalidInput as error:
        errors.append(error)
    return errors


@functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse_cron_cached(expression: str, timezone: str) -> CronExpression:
    text, tokens = _split_fields(expression)
    specs = _SIX_FIELDS if len(tokens) == 6 else _FIVE_FIELDS
    fields = tuple(_check_field(token, spec) for token, spec in zip(tokens, specs, strict=True))
    zone = _load_zone(timezone)
    template = _build_croniter(fields, zone)
    _check_can_fire(template.expanded)
    return CronExpression(text, timezone, len(fields) == 6, fields, zone, template)


def _split_fields(expression: str) -> tuple[str, tuple[str, ...]]:
    """The normalized text and the fields it stands for (an alias is expanded)."""
    tokens = tuple(expression.split())
    if not tokens:
        raise InvalidInput(f"must not be empty: {_FIELD_COUNT_HELP}", field=_EXPRESSION_FIELD)
    if tokens[0].startswith("@"):
        alias = tokens[0].lower()
        if len(tokens) > 1 or alias not in ALIASES:
            known = ", ".join(ALIASES)
            raise InvalidInput(
                f"'{expression.strip()}' is not a known alias: use one of {known}",
                field=_EXPRESSION_FIELD,
            )
        return alias, tuple(ALIASES[alias].split())
    if len(tokens) not in (5, 6):
        raise InvalidInput(f"{_FIELD_COUNT_HELP}, got {len(tokens)}", field=_EXPRESSION_FIELD)
    return " ".join(tokens), tokens


def _load_zone(timezone: str) -> ZoneInfo:
    problem = f"unknown timezone '{timezone}': use an IANA name such as 'Europe/Berlin' or 'UTC'"
    if not timezone.strip():
        problem = "must not be empty: use an IANA name such as 'Europe/Berlin' or 'UTC'"
    else:
        try:
            return ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass  # a missing key, a path-like key or a directory such as "America"
    raise InvalidInput(problem, field=_TIMEZONE_FIELD)


def _field_error(spec: _FieldSpec, problem: str) -> InvalidInput:
    return InvalidInput(f"{spec.name} field: {problem}", field=_EXPRESSION_FIELD)


def _check_field(token: str, spec: _FieldSpec) -> str:
    """Check one field item by item; return it with `?` read as `*`."""
    if token == "?" and spec.allows_question_mark:
        return "*"
    for item in token.split(","):
        _check_item(item, spec)
    return token


def _check_item(item: str, spec: _FieldSpec) -> None:
    if not item:
        raise _field_error(spec, "empty item in a list")
    if _HASH_ITEM.match(item):
        raise _field_error(spec, f"'{item}': Jenkins-style H and random R are not supported")
    match = _ITEM.match(item)
    assert match is not None  # the pattern matches any text
    base, step = match["base"], match["step"]
    if step is not None and not (step.isascii() and step.isdecimal() and int(step) > 0):
        raise _field_error(spec, f"step '{step}' in '{item}' must be a whole number above 0")
    if base == "*":
        return
    bounds = base.split("-")
    if len(bounds) > 2:
        raise _field_error(spec, f"'{item}' is not a value, a range a-b, a list or a step")
    for bound in bounds:
        _check_value(bound, item, spec)


def _check_value(value: str, item: str, spec: _FieldSpec) -> None:
    if value.isdecimal() and value.isascii():
        if not spec.low <= int(value) <= spec.high:
            raise _field_error(spec, f"{int(value)} is out of range {spec.low}-{spec.high}")
        return
    if value.upper() in spec.names:
        return
    if not value:
        hint = " (negative values are not allowed)" if item.startswith("-") else ""
        raise _field_error(spec, f"'{item}' is missing a number{hint}")
    if value == "?" and not spec.allows_question_mark:
        raise _field_error(spec, "'?' is only allowed for day-of-month and day-of-week")
    if value in ("*", "?"):
        raise _field_error(spec, f"'{item}': '{value}' must stand alone")
    what = (
        "a number or a name such as " + ", ".join(list(spec.names)[:3])
        if spec.names
        else "a number"
    )
    if re.search(r"[LW#]", value, re.IGNORECASE):
        what += " (Quartz L, W and # are not supported)"
    raise _field_error(spec, f"'{value}' is not {what}")


def _build_croniter(fields: Sequence[str], zone: ZoneInfo) -> _Croniter:
    start = datetime(2000, 1, 1, tzinfo=zone)
    try:
        built = croniter(" ".join(fields), start, second_at_beginning=len(fields) == 6)
    except (ValueError, TypeError, KeyError) as error:
        # Our own checks should have caught it; still give croniter's reason, one line.
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unreadable"
        raise InvalidInput(
            f"not a valid cron expression: {reason}", field=_EXPRESSION_FIELD
        ) from error
    return cast(_Croniter, built)


def _check_can_fire(expanded: Sequence[Sequence[int | str]]) -> None:
    """Refuse a day of month that none of the months has, such as `0 0 30 2 *`."""
    days, months, weekdays = expanded[2], expanded[3], expanded[4]
    if days == ["*"] or weekdays != ["*"]:
        return  # a restricted weekday is OR-ed with the day of month: it always fires
    month_numbers = range(1, 13) if months == ["*"] else [int(month) for month in months]
    day_numbers = [int(day) for day in days]
    if any(day <= _LONGEST_MONTH[month] for day in day_numbers for month in month_numbers):
        return
    day_text = ", ".join(map(str, day_numbers))
    month_text = ", ".join(_MONTHS[month - 1] for month in month_numbers)
    raise InvalidInput(
        f"can never fire: day {day_text} never occurs in {month_text}", field=_EXPRESSION_FIELD
    )


@functools.lru_cache(maxsize=_NEXT_CACHE_SIZE)
def _next_after_utc(cron: CronExpression, after: datetime) -> datetime | None:
    """Memoized because jobs sharing an expression all ask for the same next instant."""
    candidate = cron._next_local(after)
    # Vixie cron runs a fixed-time job once when its wall time repeats in autumn: at the
    # first pass. croniter returns both passes, so skip the second one (fold=1).
    while candidate is not None and cron.is_fixed and _is_second_pass(candidate):
        candidate = cron._next_local(candidate)
    return None if candidate is None else candidate.astimezone(UTC)


def _is_second_pass(local: datetime) -> bool:
    """Whether this wall time also happened an offset-change earlier (the repeated hour)."""
    local = local.astimezone(UTC).astimezone(local.tzinfo)  # let zoneinfo set `fold`
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


@functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _describe_fields(fields: tuple[str, ...], has_seconds: bool) -> str | None:
    """cron-descriptor's sentence, or None if it cannot describe the expression."""
    second, minute, hour, day, month, weekday = fields if has_seconds else ("0", *fields)
    # cron-descriptor reads the weekday step "1/2" as "*/2"; croniter means Mon, Wed, Fri.
    weekday = ",".join(re.sub(r"^(\w+)/", r"\1-6/", item) for item in weekday.split(","))
    # Seven fields (year last) so cron-descriptor never guesses whether six start with seconds.
    parts = (second, minute, hour, day, month, weekday, "*")
    options = Options(locale_code="en_US", use_24hour_time_format=True)
    try:
        return str(get_description(" ".join(parts), options))
    except Exception:  # any failure in the wording library must not break a job listing
        return None
