"""How large a stored input may be.

Everything a job stores is read back, evaluated or sent again for as long as the job lives:
a 1 MB cron expression was stored once and then blocked the event loop for seconds at
every evaluation. Sizes are checked before any other validation, so that nothing
expensive (cron parsing, a handler's own argument checks) ever sees an oversized value,
and a job with any oversized field is refused whole: nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gql_scheduler.domain import actions
from gql_scheduler.domain.errors import TooLarge, UserInputError
from gql_scheduler.domain.jobs import JobSpec
from gql_scheduler.domain.schedules import CronSchedule, Schedule

MAX_HEADERS = 100
MAX_RECIPIENTS = 100
MAX_COMMAND_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class InputLimits:
    """`payload_bytes` bounds large fields (UTF-8 bytes, JSON-encoded when JSON);
    `field_length` bounds one-line fields (characters)."""

    payload_bytes: int = 64 * 1024
    field_length: int = 2048


DEFAULT_LIMITS = InputLimits()


def size_problems(spec: JobSpec, limits: InputLimits) -> list[UserInputError]:
    """Every field of `spec` over its limit, by JobSpec field path."""
    problems = list(schedule_size_problems(spec.schedules, limits))
    problems.extend(error.under("action") for error in _action_problems(spec.action, limits))
    return problems


def schedule_size_problems(
    items: tuple[Schedule, ...], limits: InputLimits
) -> Iterator[UserInputError]:
    for index, schedule in enumerate(items):
        if isinstance(schedule, CronSchedule):
            yield from _long(
                schedule.expression, limits, "schedules", str(index), "cron", "expression"
            )
            yield from _long(schedule.timezone, limits, "schedules", str(index), "cron", "timezone")


def note_problems(note: str | None, limits: InputLimits) -> list[UserInputError]:
    return list(_long(note, limits, "note"))


def _action_problems(action: actions.Action, limits: InputLimits) -> Iterator[UserInputError]:
    match action:
        case actions.HttpAction():
            yield from _http_problems(action, limits)
        case actions.ShellAction():
            yield from _too_many(action.command, MAX_COMMAND_ITEMS, "shell", "command")
            together = {"command": list(action.command), "env": action.env}
            yield from _big_json(together, limits, "shell", "command")
            yield from _long(action.working_directory, limits, "shell", "working_directory")
        case actions.HandlerAction():
            yield from _long(action.name, limits, "handler", "name")
            yield from _big_json(action.args, limits, "handler", "args")
        case actions.EmailAction():
            yield from _too_many(action.to, MAX_RECIPIENTS, "email", "to")
            for index, address in enumerate(action.to):
                yield from _long(address, limits, "email", "to", str(index))
            yield from _long(action.subject, limits, "email", "subject")
            yield from _big_text(action.body, limits, "email", "body")


def _http_problems(action: actions.HttpAction, limits: InputLimits) -> Iterator[UserInputError]:
    yield from _long(action.url, limits, "http", "url")
    yield from _too_many(action.headers, MAX_HEADERS, "http", "headers")
    for index, header in enumerate(action.headers):
        yield from _long(header.name, limits, "http", "headers", str(index), "name")
        yield from _long(header.value, limits, "http", "headers", str(index), "value")
    yield from _big_text(action.body, limits, "http", "body")
    if action.json is not None:
        yield from _big_json(action.json, limits, "http", "json")


def _long(value: str | None, limits: InputLimits, *field: str) -> Iterator[UserInputError]:
    if value is not None and len(value) > limits.field_length:
        yield TooLarge(f"at most {limits.field_length} characters", field=field)


def _too_many(items: tuple[Any, ...], most: int, *field: str) -> Iterator[UserInputError]:
    if len(items) > most:
        yield TooLarge(f"at most {most} items", field=field)


def _big_text(value: str | None, limits: InputLimits, *field: str) -> Iterator[UserInputError]:
    # Characters first: no string that short can be over the limit in bytes, so most
    # values are never encoded.
    if (
        value is not None
        and len(value) * 4 > limits.payload_bytes
        and len(value.encode("utf-8", "surrogatepass")) > limits.payload_bytes
    ):
        yield TooLarge(f"at most {limits.payload_bytes} bytes", field=field)


def _big_json(value: object, limits: InputLimits, *field: str) -> Iterator[UserInputError]:
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except RecursionError:
        yield TooLarge("nested too deeply", field=field)
        return
    except (TypeError, ValueError):  # the validation proper names what is wrong with it
        return
    if len(encoded.encode("utf-8", "surrogatepass")) > limits.payload_bytes:
        yield TooLarge(f"at most {limits.payload_bytes} bytes as JSON", field=field)
