"""GraphQL inputs -> what the service takes. Shapes only: the service validates values."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import strawberry

from gql_scheduler.api import inputs
from gql_scheduler.domain import action_secrets, actions
from gql_scheduler.domain import executions as domain_executions
from gql_scheduler.domain import jobs as domain_jobs
from gql_scheduler.domain.action_secrets import is_kept
from gql_scheduler.domain.errors import ErrorCollector, InputErrors, InvalidInput
from gql_scheduler.domain.jobs import JobSpec
from gql_scheduler.domain.policies import RetryPolicy
from gql_scheduler.domain.schedules import CronSchedule, OnceSchedule
from gql_scheduler.services.validation import IntervalDraft, ScheduleDraft

T = TypeVar("T")

# UpdateJobInput field -> JobSpec field, for the fields that copy over unchanged.
_PLAIN_UPDATE_FIELDS = {
    "name": "name",
    "description": "description",
    "start_at": "start_at",
    "end_at": "end_at",
    "jitter_seconds": "jitter_seconds",
    "overlap_policy": "overlap_policy",
    "misfire_policy": "misfire_policy",
    "catch_up_window_seconds": "catch_up_window_seconds",
    "delivery": "delivery",
    "timeout_seconds": "timeout_seconds",
}
# Fields a client may clear with an explicit null; the others need a value.
_NULLABLE_SPEC_FIELDS = frozenset(
    {
        "description",
        "start_at",
        "end_at",
        "misfire_policy",
        "catch_up_window_seconds",
        "timeout_seconds",
    }
)


def schedule_drafts(items: list[inputs.ScheduleInput]) -> list[ScheduleDraft]:
    return [schedule_draft(item) for item in items]


def schedule_draft(item: inputs.ScheduleInput) -> ScheduleDraft:
    if item.cron:
        return CronSchedule(item.cron.expression, item.cron.timezone or "UTC")
    if item.interval:
        return IntervalDraft(item.interval.every_seconds, given(item.interval.anchor))
    if item.once:
        return OnceSchedule(item.once.at)
    raise InvalidInput("set exactly one of cron, interval, once")


def action(item: inputs.ActionInput) -> actions.Action:
    if item.http:
        return http_action(item.http)
    if item.shell:
        env, public_env = shell_env(item.shell)
        return actions.ShellAction(
            command=tuple(item.shell.command),
            env=env,
            working_directory=given(item.shell.working_directory),
            public_env=public_env,
        )
    if item.handler:
        return actions.HandlerAction(item.handler.name, given(item.handler.args))
    if item.email:
        email = item.email
        return actions.EmailAction(
            to=tuple(email.to), subject=email.subject, body=email.body, html=bool(email.html)
        )
    raise InvalidInput("set exactly one of http, shell, handler, email")


def http_action(http: inputs.HttpActionInput) -> actions.HttpAction:
    """Secrets left out become KEEP_STORED, which the service swaps for the stored values."""
    body_secret = bool(http.body_secret)
    body = given(http.body)
    json: Any = given(http.json)  # any JSON value
    if body_secret and is_kept(body) and (json is None or json == actions.MASK):
        body, json = action_secrets.KEEP_STORED, None
    return actions.HttpAction(
        url=http.url,
        method=http.method or actions.HttpMethod.POST,
        headers=tuple(header(h, index) for index, h in enumerate(http.headers or ())),
        body=body,
        json=json,
        success_statuses=tuple(http.success_statuses or ()),
        body_secret=body_secret,
    )


def header(item: inputs.HeaderInput, index: int) -> actions.Header:
    value = given(item.value)
    if item.secret and is_kept(value):
        return actions.Header(item.name, action_secrets.KEEP_STORED, secret=True)
    if value is None:
        field = ["action", "http", "headers", str(index), "value"]
        raise InvalidInput("give a value (only a secret's may be left out)", field=field)
    return actions.Header(item.name, value, secret=bool(item.secret))


def shell_env(item: inputs.ShellActionInput) -> tuple[Any, tuple[str, ...]]:
    """(env, public names): from env (every value secret) or envVars (each as marked)."""
    env: Any = given(item.env)  # any JSON value: the domain checks its shape
    env_vars = given(item.env_vars)
    if env_vars is None:
        if isinstance(env, dict):  # the mask read back, sent again, keeps the stored value
            kept = action_secrets.KEEP_STORED
            env = {name: kept if value == actions.MASK else value for name, value in env.items()}
        return env, ()
    field = ["action", "shell", "env_vars"]
    if env is not None:
        raise InvalidInput("set env or envVars, not both", field=field)
    found = ErrorCollector()
    values: dict[str, str] = {}
    for index, variable in enumerate(env_vars):
        value = given(variable.value)
        if variable.name in values:
            found.add(InvalidInput("this name is given twice", field=[*field, str(index), "name"]))
        elif variable.secret and is_kept(value):
            values[variable.name] = action_secrets.KEEP_STORED
        elif value is None:
            message = "give a value (only a secret's may be left out)"
            found.add(InvalidInput(message, field=[*field, str(index), "value"]))
        else:
            values[variable.name] = value
    found.raise_if_any()
    return values, tuple(v.name for v in env_vars if v.secret is False)


def retry(item: inputs.RetryPolicyInput | None) -> RetryPolicy:
    default = RetryPolicy()
    if item is None:
        return default
    # An explicit null on a field means "the default", as leaving it out does.
    return RetryPolicy(
        max_attempts=_or_default(given(item.max_attempts), default.max_attempts),
        initial_delay_seconds=_or_default(
            given(item.initial_delay_seconds), default.initial_delay_seconds
        ),
        backoff_factor=_or_default(given(item.backoff_factor), default.backoff_factor),
        max_delay_seconds=_or_default(given(item.max_delay_seconds), default.max_delay_seconds),
        jitter=_or_default(given(item.jitter), default.jitter),
    )


def job_spec(item: inputs.CreateJobInput) -> JobSpec:
    """The spec of a new job; schedules are filled in by the service from their drafts."""
    defaults = JobSpec(name=item.name, schedules=(), action=action(item.action))
    return dataclasses.replace(
        defaults,
        description=given(item.description),
        start_at=given(item.start_at),
        end_at=given(item.end_at),
        jitter_seconds=_or_default(item.jitter_seconds, defaults.jitter_seconds),
        overlap_policy=item.overlap_policy or defaults.overlap_policy,
        misfire_policy=given(item.misfire_policy),
        catch_up_window_seconds=given(item.catch_up_window_seconds),
        delivery=item.delivery or defaults.delivery,
        retry=retry(given(item.retry)),
        timeout_seconds=given(item.timeout_seconds),
        tags=tuple(item.tags or ()),
    )


def job_changes(item: inputs.UpdateJobInput) -> dict[str, Any]:
    """The JobSpec fields a client gave; an explicit null on a required one is an error."""
    given = {
        name: getattr(item, name)
        for name in (*_PLAIN_UPDATE_FIELDS, "action", "retry", "tags")
        if getattr(item, name) is not strawberry.UNSET
    }
    nulls = [
        name for name, value in given.items() if value is None and name not in _NULLABLE_SPEC_FIELDS
    ]
    if item.schedules is None:
        nulls.append("schedules")
    if nulls:
        raise InputErrors(InvalidInput("cannot be null", field=[name]) for name in nulls)
    changes = {
        _PLAIN_UPDATE_FIELDS[name]: given[name] for name in given if name in _PLAIN_UPDATE_FIELDS
    }
    if "action" in given:
        changes["action"] = action(given["action"])
    if "retry" in given:
        changes["retry"] = retry(given["retry"])
    if "tags" in given:
        changes["tags"] = tuple(given["tags"])
    return changes


def job_filter(item: inputs.JobFilter | None) -> domain_jobs.JobFilter:
    if item is None:
        return domain_jobs.JobFilter()
    states, tags = given(item.states), given(item.tags)
    return domain_jobs.JobFilter(
        states=tuple(states) if states else None,
        tags=tuple(tags) if tags else None,
        search=given(item.search) or None,
    )


def execution_filter(item: inputs.ExecutionFilter | None) -> domain_executions.ExecutionFilter:
    if item is None:
        return domain_executions.ExecutionFilter()
    job_id, statuses, triggers = given(item.job_id), given(item.statuses), given(item.triggers)
    return domain_executions.ExecutionFilter(
        job_id=str(job_id) if job_id is not None else None,
        statuses=tuple(statuses) if statuses else None,
        triggers=tuple(triggers) if triggers else None,
        since=given(item.since),
        until=given(item.until),
    )


def given(value: T | None) -> T | None:
    """An input field the client left out reads as None."""
    return None if value is strawberry.UNSET else value


def _or_default(value: T | None, default: T) -> T:
    return default if value is None else value
