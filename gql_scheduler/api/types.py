"""Output types. Each is built from a domain object; resolvers that need I/O use loaders."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from gql_scheduler.api import enums  # noqa: F401  (registers the enums with Strawberry)
from gql_scheduler.domain import actions, schedules
from gql_scheduler.domain.action_secrets import shown_body, shown_env
from gql_scheduler.domain.errors import ErrorCode
from gql_scheduler.domain.executions import ExecutionStats
from gql_scheduler.domain.policies import RetryPolicy as DomainRetryPolicy

if TYPE_CHECKING:
    pass


@strawberry.type
class UserError:
    field: list[str] | None
    message: str
    code: ErrorCode


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def from_cursors(cls, cursors: list[str], *, has_next: bool, has_previous: bool) -> PageInfo:
        return cls(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )


# ---------------------------------------------------------------- schedules
@strawberry.type
class CronSchedule:
    expression: str
    timezone: str
    description: str


@strawberry.type
class IntervalSchedule:
    every_seconds: float
    anchor: datetime | None


@strawberry.type
class OnceSchedule:
    at: datetime


Schedule = Annotated[CronSchedule | IntervalSchedule | OnceSchedule, strawberry.union("Schedule")]


def schedule_from_domain(schedule: schedules.Schedule) -> Schedule:
    if isinstance(schedule, schedules.CronSchedule):
        return CronSchedule(
            expression=schedule.expression,
            timezone=schedule.timezone,
            description=schedules.describe_schedule(schedule),
        )
    if isinstance(schedule, schedules.IntervalSchedule):
        return IntervalSchedule(every_seconds=schedule.every_seconds, anchor=schedule.anchor)
    return OnceSchedule(at=schedule.at)


# ---------------------------------------------------------------- actions
@strawberry.type(
    description=(
        "Secret values, and values whose names look secret (Authorization, Cookie, *token*, "
        '*key*, *secret*, *sig*, *pass*...), read back as "***".'
    )
)
class Header:
    name: str
    value: str
    secret: bool = strawberry.field(description='Whether the value is hidden ("***").')


@strawberry.type(description='A secret value (the default for env) reads back as "***".')
class EnvVar:
    name: str
    value: str
    secret: bool


@strawberry.type
class HttpAction:
    url: str = strawberry.field(
        description=(
            "The URL's userinfo, and the values of query parameters that look secret, "
            'read back as "***".'
        )
    )
    method: actions.HttpMethod
    headers: list[Header]
    body: str | None = strawberry.field(description='"***" when bodySecret.')
    json: JSON | None = strawberry.field(
        description='"***" when bodySecret; else the values of secret-looking keys are "***".'
    )
    success_statuses: list[int]
    body_secret: bool


@strawberry.type
class ShellAction:
    command: list[str]
    env: JSON | None = strawberry.field(description='Secret values read back as "***".')
    env_vars: list[EnvVar]
    working_directory: str | None


@strawberry.type
class HandlerAction:
    name: str
    args: JSON | None


@strawberry.type
class EmailAction:
    to: list[str]
    subject: str
    body: str
    html: bool


Action = Annotated[
    HttpAction | ShellAction | HandlerAction | EmailAction, strawberry.union("Action")
]


def action_from_domain(action: actions.Action) -> Action:
    if isinstance(action, actions.HttpAction):
        return _http_from_domain(action)
    if isinstance(action, actions.ShellAction):
        env_vars = [EnvVar(name=v.name, value=v.value, secret=v.secret) for v in shown_env(action)]
        return ShellAction(
            command=list(action.command),
            env=JSON({v.name: v.value for v in env_vars}) if action.env is not None else None,
            env_vars=env_vars,
            working_directory=action.working_directory,
        )
    if isinstance(action, actions.HandlerAction):
        return HandlerAction(name=action.name, args=action.args)
    return EmailAction(
        to=list(action.to), subject=action.subject, body=action.body, html=action.html
    )


def _http_from_domain(action: actions.HttpAction) -> HttpAction:
    body, json = shown_body(action)
    return HttpAction(
        url=actions.masked_url(action.url),
        method=action.method,
        headers=[
            Header(name=h.name, value=h.value, secret=h.secret)
            for h in actions.masked_headers(action.headers)
        ],
        body=body,
        json=json,
        success_statuses=list(action.success_statuses),
        body_secret=action.body_secret,
    )


# ---------------------------------------------------------------- policies and stats
@strawberry.type
class RetryPolicy:
    max_attempts: int
    initial_delay_seconds: float
    backoff_factor: float
    max_delay_seconds: float
    jitter: bool

    @classmethod
    def from_domain(cls, policy: DomainRetryPolicy) -> RetryPolicy:
        return cls(
            max_attempts=policy.max_attempts,
            initial_delay_seconds=policy.initial_delay_seconds,
            backoff_factor=policy.backoff_factor,
            max_delay_seconds=policy.max_delay_seconds,
            jitter=policy.jitter,
        )


@strawberry.type
class JobStats:
    total: int
    succeeded: int
    failed: int
    success_rate: float | None
    avg_duration_ms: float | None
    p95_duration_ms: float | None
    avg_drift_ms: float | None
    p95_drift_ms: float | None
    last_success_at: datetime | None
    last_failure_at: datetime | None

    @classmethod
    def from_row(cls, row: ExecutionStats) -> JobStats:
        decided = row.succeeded + row.failed
        return cls(
            total=row.total,
            succeeded=row.succeeded,
            failed=row.failed,
            success_rate=row.succeeded / decided if decided else None,
            avg_duration_ms=row.avg_duration_ms,
            p95_duration_ms=row.p95_duration_ms,
            avg_drift_ms=row.avg_drift_ms,
            p95_drift_ms=row.p95_drift_ms,
            last_success_at=row.last_success_at,
            last_failure_at=row.last_failure_at,
        )


@strawberry.type
class Health:
    status: str
    version: str
    instance: str
    database: bool
    scheduler_running: bool
    active_jobs: int
    running_executions: int


@strawberry.type
class SchedulePreview:
    runs: list[datetime]
    descriptions: list[str]
    errors: list[UserError]
