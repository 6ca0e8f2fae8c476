"""Input types, and their conversion into what the service takes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gql_scheduler.domain import actions
from gql_scheduler.domain.executions import ExecutionStatus, ExecutionTrigger
from gql_scheduler.domain.jobs import JobState
from gql_scheduler.domain.policies import Delivery, MisfirePolicy, OverlapPolicy

UNSET: Any = strawberry.UNSET


@strawberry.input
class CronScheduleInput:
    expression: str
    timezone: str | None = "UTC"


@strawberry.input
class IntervalScheduleInput:
    every_seconds: float
    anchor: datetime | None = UNSET


@strawberry.input
class OnceScheduleInput:
    at: datetime


@strawberry.input(
    one_of=True, description="Exactly one field is set (the @oneOf input convention)."
)
class ScheduleInput:
    cron: CronScheduleInput | None = strawberry.field(
        default=UNSET,
        description=(
            "5 fields (minute hour day-of-month month day-of-week) or 6 fields with SECONDS "
            "FIRST (second minute hour day-of-month month day-of-week), as in Quartz, Spring "
            "and Dkron. Day-of-week: 0 or 7 = Sunday, 1 = Monday, or MON..SUN. Also @hourly, "
            "@daily, @weekly, @monthly, @yearly."
        ),
    )
    interval: IntervalScheduleInput | None = UNSET
    once: OnceScheduleInput | None = UNSET


_KEEP_STORED = (
    "On a job being updated, a secret left out (or given as the mask read back) keeps its "
    "stored value."
)


@strawberry.input
class HeaderInput:
    name: str
    value: str | None = strawberry.field(default=UNSET, description=_KEEP_STORED)
    secret: bool | None = strawberry.field(
        default=False, description="Write-only: sent for real, never read back."
    )


@strawberry.input
class EnvVarInput:
    name: str
    value: str | None = strawberry.field(default=UNSET, description=_KEEP_STORED)
    secret: bool | None = strawberry.field(
        default=True,
        description="Write-only unless false: the environment is where secrets usually go.",
    )


@strawberry.input
class HttpActionInput:
    url: str
    method: actions.HttpMethod | None = actions.HttpMethod.POST
    headers: list[HeaderInput] | None = strawberry.field(default_factory=list)
    body: str | None = UNSET
    json: JSON | None = UNSET
    success_statuses: list[int] | None = strawberry.field(
        default_factory=list, description="Statuses that count as success; empty means any 2xx."
    )
    body_secret: bool | None = strawberry.field(
        default=False,
        description=(
            "body and json are write-only. " + _KEEP_STORED.replace("a secret", "body and json")
        ),
    )


@strawberry.input
class ShellActionInput:
    command: list[str]
    env: JSON | None = strawberry.field(
        default=UNSET,
        description="Names to values, all write-only. envVars can mark some public instead.",
    )
    env_vars: list[EnvVarInput] | None = strawberry.field(
        default=UNSET, description="Instead of env: each variable secret (default) or not."
    )
    working_directory: str | None = UNSET


@strawberry.input
class HandlerActionInput:
    name: str
    args: JSON | None = UNSET


@strawberry.input
class EmailActionInput:
    to: list[str]
    subject: str
    body: str
    html: bool | None = False


@strawberry.input(one_of=True)
class ActionInput:
    http: HttpActionInput | None = UNSET
    shell: ShellActionInput | None = strawberry.field(
        default=UNSET, description="Refused unless the server enables shell actions."
    )
    handler: HandlerActionInput | None = strawberry.field(
        default=UNSET, description="A Python callable registered under a name."
    )
    email: EmailActionInput | None = strawberry.field(
        default=UNSET,
        description="Sent through GQL_SCHEDULER_SMTP_URL; refused (DISABLED) when unset.",
    )


@strawberry.input
class RetryPolicyInput:
    max_attempts: int | None = 1
    initial_delay_seconds: float | None = 1
    backoff_factor: float | None = 2
    max_delay_seconds: float | None = 300
    jitter: bool | None = True


@strawberry.input
class CreateJobInput:
    name: str
    schedules: list[ScheduleInput]
    action: ActionInput
    description: str | None = UNSET
    paused: bool | None = False
    start_at: datetime | None = UNSET
    end_at: datetime | None = UNSET
    jitter_seconds: float | None = 0
    overlap_policy: OverlapPolicy | None = OverlapPolicy.SKIP
    misfire_policy: MisfirePolicy | None = UNSET
    catch_up_window_seconds: float | None = UNSET
    delivery: Delivery | None = Delivery.AT_LEAST_ONCE
    retry: RetryPolicyInput | None = UNSET
    timeout_seconds: float | None = UNSET
    tags: list[str] | None = strawberry.field(default_factory=list)


@strawberry.input(description="Every field optional: what is given replaces the stored value.")
class UpdateJobInput:
    name: str | None = UNSET
    description: str | None = UNSET
    schedules: list[ScheduleInput] | None = UNSET
    action: ActionInput | None = UNSET
    start_at: datetime | None = UNSET
    end_at: datetime | None = UNSET
    jitter_seconds: float | None = UNSET
    overlap_policy: OverlapPolicy | None = UNSET
    misfire_policy: MisfirePolicy | None = UNSET
    catch_up_window_seconds: float | None = UNSET
    delivery: Delivery | None = UNSET
    retry: RetryPolicyInput | None = UNSET
    timeout_seconds: float | None = UNSET
    tags: list[str] | None = UNSET


@strawberry.input(
    description="Tags match jobs carrying ALL of them; search looks in name and description."
)
class JobFilter:
    states: list[JobState] | None = UNSET
    tags: list[str] | None = UNSET
    search: str | None = UNSET


@strawberry.input
class ExecutionFilter:
    job_id: strawberry.ID | None = UNSET
    statuses: list[ExecutionStatus] | None = UNSET
    triggers: list[ExecutionTrigger] | None = UNSET
    since: datetime | None = UNSET
    until: datetime | None = UNSET
