"""Turns what a client sent into a valid JobSpec, or every problem with it at once.

Problems name their field as the domain does (`end_at`, `action.http.url`): the API turns
that into the path of the client's own request."""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from gql_scheduler.actions.network_policy import NetworkPolicy
from gql_scheduler.domain import action_secrets, actions, schedules
from gql_scheduler.domain.errors import ErrorCollector, InvalidInput
from gql_scheduler.domain.jobs import MAX_NAME_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, JobSpec
from gql_scheduler.domain.schedules import CronSchedule, IntervalSchedule, OnceSchedule, Schedule
from gql_scheduler.services import input_sizes
from gql_scheduler.services.input_sizes import DEFAULT_LIMITS, InputLimits

MAX_SCHEDULES = 20
MAX_DESCRIPTION_LENGTH = 10_000
MAX_JITTER_SECONDS = 24 * 3600.0
MAX_PREVIEW_COUNT = 100
MAX_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class IntervalDraft:
    """An interval as a client sends it: the anchor may be left for the server to fill."""

    every_seconds: float
    anchor: datetime | None = None


ScheduleDraft = CronSchedule | IntervalDraft | OnceSchedule


@dataclass(frozen=True, slots=True)
class ServerPolicy:
    """What this server allows, which decides some validations."""

    shell_enabled: bool
    email_enabled: bool
    handlers: actions.HandlerCatalog
    # Where HTTP actions may connect: a literal address it refuses is refused at once.
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    inputs: InputLimits = DEFAULT_LIMITS


def schedule_from_draft(draft: ScheduleDraft, *, now: datetime) -> Schedule:
    """An interval with no anchor starts now; reading it back shows the real anchor."""
    if isinstance(draft, IntervalDraft):
        return IntervalSchedule(draft.every_seconds, draft.anchor or now)
    return draft


def check_schedules(
    found: ErrorCollector,
    items: tuple[Schedule, ...],
    *,
    now: datetime,
    limits: InputLimits = DEFAULT_LIMITS,
) -> None:
    """Problems of a job's `schedules` (or of the schedules previewed)."""
    oversized = list(input_sizes.schedule_size_problems(items, limits))
    if oversized:  # never parsed: an oversized expression is costly to evaluate
        found.extend(oversized)
        return
    if not items:
        found.add(_invalid("give at least one schedule", "schedules"))
    if len(items) > MAX_SCHEDULES:
        found.add(_invalid(f"at most {MAX_SCHEDULES} schedules", "schedules"))
    for index, schedule in enumerate(items):
        found.extend(schedules.validate_schedule(schedule, now=now), "schedules", str(index))


def keep_stored_secrets(spec: JobSpec, *, stored: actions.Action | None) -> JobSpec:
    """The spec with the secrets its action left out taken from `stored` (None for a new
    job); InputErrors for a secret left out with none stored."""
    action, problems = action_secrets.keep_stored_secrets(spec.action, stored)
    found = ErrorCollector()
    found.extend(problems, "action")
    found.raise_if_any()
    return dataclasses.replace(spec, action=action)


def check_spec(
    spec: JobSpec,
    *,
    policy: ServerPolicy,
    now: datetime,
    check_schedule_times: bool = True,
) -> None:
    """Raise InputErrors naming every problem in `spec`, by JobSpec field.

    Sizes first, and alone: nothing else looks at an oversized value."""
    found = ErrorCollector()
    found.extend(input_sizes.size_problems(spec, policy.inputs))
    found.raise_if_any()
    _check_name(found, spec.name)
    if spec.description is not None and len(spec.description) > MAX_DESCRIPTION_LENGTH:
        found.add(_invalid(f"at most {MAX_DESCRIPTION_LENGTH} characters", "description"))
    if check_schedule_times:
        check_schedules(found, spec.schedules, now=now, limits=policy.inputs)
    found.extend(
        actions.validate_action(
            spec.action,
            shell_enabled=policy.shell_enabled,
            email_enabled=policy.email_enabled,
            handlers=policy.handlers,
        ),
        "action",
    )
    _check_http_destination(found, spec.action, policy.network)
    _check_window(found, spec)
    _check_durations(found, spec)
    found.extend(spec.retry.validate(), "retry")
    _check_tags(found, spec.tags)
    found.raise_if_any()


def _invalid(message: str, *field: str) -> InvalidInput:
    return InvalidInput(message, field=field)


def _check_name(found: ErrorCollector, name: str) -> None:
    if not name.strip():
        found.add(_invalid("must not be empty", "name"))
    elif len(name) > MAX_NAME_LENGTH:
        found.add(_invalid(f"at most {MAX_NAME_LENGTH} characters", "name"))
    elif name != name.strip() or any(unicodedata.category(c)[0] == "C" for c in name):
        found.add(
            _invalid("must not start or end with spaces or contain control characters", "name")
        )


def _check_http_destination(
    found: ErrorCollector, action: actions.Action, network: NetworkPolicy
) -> None:
    if isinstance(action, actions.HttpAction):
        problem = network.url_host_problem(action.url)
        if problem is not None:
            found.add(_invalid(problem, "action", "http", "url"))


def _check_window(found: ErrorCollector, spec: JobSpec) -> None:
    if spec.start_at is not None and spec.end_at is not None and spec.end_at <= spec.start_at:
        found.add(_invalid("must be after startAt", "end_at"))


def _check_durations(found: ErrorCollector, spec: JobSpec) -> None:
    if not (math.isfinite(spec.jitter_seconds) and 0 <= spec.jitter_seconds <= MAX_JITTER_SECONDS):
        found.add(_invalid(f"must be between 0 and {MAX_JITTER_SECONDS:g}", "jitter_seconds"))
    optional_positive = {
        "catch_up_window_seconds": spec.catch_up_window_seconds,
        "timeout_seconds": spec.timeout_seconds,
    }
    for field_name, value in optional_positive.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            found.add(_invalid("must be a positive number of seconds", field_name))


def _check_tags(found: ErrorCollector, tags: tuple[str, ...]) -> None:
    if len(tags) > MAX_TAGS:
        found.add(_invalid(f"at most {MAX_TAGS} tags", "tags"))
    for index, tag in enumerate(tags):
        if not tag.strip() or len(tag) > MAX_TAG_LENGTH or tag != tag.strip():
            found.add(
                _invalid(
                    f"a tag is 1 to {MAX_TAG_LENGTH} characters with no surrounding spaces",
                    "tags",
                    str(index),
                )
            )


def normalize_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """Tags are a set: duplicates collapse, and they read back sorted."""
    return tuple(sorted(set(tags)))


def check_page_size(first: int) -> None:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidInput(f"must be between 1 and {MAX_PAGE_SIZE}", field=["first"])


def check_note(note: str | None, limits: InputLimits) -> None:
    found = ErrorCollector()
    found.extend(input_sizes.note_problems(note, limits))
    found.raise_if_any()


def check_count(count: int) -> None:
    if not 1 <= count <= MAX_PREVIEW_COUNT:
        raise InvalidInput(f"must be between 1 and {MAX_PREVIEW_COUNT}", field=["count"])
