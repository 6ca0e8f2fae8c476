"""Job and Execution, the two node types, with their connections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from gql_scheduler.api.context import Info
from gql_scheduler.api.errors import raise_as_graphql_error
from gql_scheduler.api.types import (
    Action,
    JobStats,
    PageInfo,
    RetryPolicy,
    Schedule,
    action_from_domain,
    schedule_from_domain,
)
from gql_scheduler.domain import executions as domain_executions
from gql_scheduler.domain import jobs as domain_jobs
from gql_scheduler.domain.access import SYSTEM_ACTOR
from gql_scheduler.domain.executions import ExecutionFilter, ExecutionStatus, ExecutionTrigger
from gql_scheduler.domain.jobs import JobState
from gql_scheduler.domain.pages import Page
from gql_scheduler.domain.policies import Delivery, MisfirePolicy, OverlapPolicy
from gql_scheduler.services.validation import MAX_PAGE_SIZE, MAX_PREVIEW_COUNT

PAGE_SIZE = strawberry.argument(
    description=f"Page size, 1 to {MAX_PAGE_SIZE}; it multiplies the query's cost."
)
RUN_COUNT = strawberry.argument(description=f"How many, 1 to {MAX_PREVIEW_COUNT}.")


@strawberry.type
class Job:
    domain: strawberry.Private[domain_jobs.Job]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.domain.id)

    @strawberry.field
    def name(self) -> str:
        return self.domain.spec.name

    @strawberry.field
    def description(self) -> str | None:
        return self.domain.spec.description

    @strawberry.field
    def state(self) -> JobState:
        return self.domain.state

    @strawberry.field
    def pause_note(self) -> str | None:
        return self.domain.pause_note

    @strawberry.field
    def schedules(self) -> list[Schedule]:
        return [schedule_from_domain(schedule) for schedule in self.domain.spec.schedules]

    @strawberry.field
    def action(self) -> Action:
        return action_from_domain(self.domain.spec.action)

    @strawberry.field
    def start_at(self) -> datetime | None:
        return self.domain.spec.start_at

    @strawberry.field
    def end_at(self) -> datetime | None:
        return self.domain.spec.end_at

    @strawberry.field
    def jitter_seconds(self) -> float:
        return self.domain.spec.jitter_seconds

    @strawberry.field
    def overlap_policy(self) -> OverlapPolicy:
        return self.domain.spec.overlap_policy

    @strawberry.field(description="The job's own policy, or the server's default when it set none.")
    def misfire_policy(self, info: Info) -> MisfirePolicy:
        return info.context.jobs.misfire_policy_of(self.domain)

    @strawberry.field
    def catch_up_window_seconds(self) -> float | None:
        return self.domain.spec.catch_up_window_seconds

    @strawberry.field
    def delivery(self) -> Delivery:
        return self.domain.spec.delivery

    @strawberry.field
    def retry(self) -> RetryPolicy:
        return RetryPolicy.from_domain(self.domain.spec.retry)

    @strawberry.field
    def timeout_seconds(self) -> float | None:
        return self.domain.spec.timeout_seconds

    @strawberry.field
    def tags(self) -> list[str]:
        return list(self.domain.spec.tags)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.domain.created_at

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.domain.updated_at

    @strawberry.field
    def last_run_at(self) -> datetime | None:
        return self.domain.last_run_at

    @strawberry.field
    def next_run_at(self, info: Info) -> datetime | None:
        runs = info.context.jobs.upcoming_runs(self.domain, 1)
        return runs[0] if runs else None

    @strawberry.field
    def upcoming_runs(
        self, info: Info, count: Annotated[int | None, RUN_COUNT] = 5
    ) -> list[datetime]:
        with raise_as_graphql_error(info):
            return info.context.jobs.upcoming_runs(self.domain, 5 if count is None else count)

    @strawberry.field
    async def last_execution(self, info: Info) -> Execution | None:
        execution = await info.context.loaders.last_execution.load(self.domain.id)
        return Execution(domain=execution) if execution else None

    @strawberry.field
    async def executions(
        self,
        info: Info,
        first: Annotated[int | None, PAGE_SIZE] = 20,
        after: str | None = None,
        statuses: list[ExecutionStatus] | None = None,
    ) -> ExecutionConnection:
        execution_filter = ExecutionFilter(
            job_id=self.domain.id, statuses=tuple(statuses) if statuses else None
        )
        with raise_as_graphql_error(info):
            page = await info.context.executions.list_executions(
                execution_filter, first=20 if first is None else first, after=after
            )
        return ExecutionConnection.from_page(page, has_previous=after is not None)

    @strawberry.field(
        description=(
            "Over executions scheduled since `since` (default: all). failed counts FAILED and "
            "TIMED_OUT; successRate is succeeded / (succeeded + failed). One read per job: "
            "it weighs 20 in the query's cost."
        )
    )
    async def stats(self, info: Info, since: datetime | None = None) -> JobStats:
        return JobStats.from_row(await info.context.executions.stats(self.domain.id, since))


@strawberry.type
class Execution:
    domain: strawberry.Private[domain_executions.Execution]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.domain.id)

    @strawberry.field(description="Null once the job is deleted.")
    async def job(self, info: Info) -> Job | None:
        job = await info.context.loaders.job.load(self.domain.job_id)
        return Job(domain=job) if job else None

    @strawberry.field
    def job_id(self) -> strawberry.ID:
        return strawberry.ID(self.domain.job_id)

    @strawberry.field
    def status(self) -> ExecutionStatus:
        return self.domain.status

    @strawberry.field
    def trigger(self) -> ExecutionTrigger:
        return self.domain.trigger

    @strawberry.field(
        description="Who asked for it: the API key's name for a manual run, retry or "
        "backfill (`anonymous` where authentication is off), `system` for what the "
        "scheduler did by itself."
    )
    def triggered_by(self) -> str:
        return self.domain.triggered_by or SYSTEM_ACTOR

    @strawberry.field
    def attempt(self) -> int:
        return self.domain.attempt

    @strawberry.field
    def scheduled_for(self) -> datetime:
        return self.domain.scheduled_for

    @strawberry.field
    def queued_at(self) -> datetime:
        return self.domain.queued_at

    @strawberry.field
    def started_at(self) -> datetime | None:
        return self.domain.started_at

    @strawberry.field
    def finished_at(self) -> datetime | None:
        return self.domain.finished_at

    @strawberry.field(description="startedAt - scheduledFor")
    def drift_ms(self) -> float | None:
        return self.domain.drift_ms

    @strawberry.field
    def duration_ms(self) -> float | None:
        return self.domain.duration_ms

    @strawberry.field(description="HTTP status or process exit code")
    def result_code(self) -> int | None:
        return self.domain.result_code

    @strawberry.field(description="Truncated to the server's output limit")
    def output(self) -> str | None:
        return self.domain.output

    @strawberry.field
    def error(self) -> str | None:
        return self.domain.error

    @strawberry.field(description="Which scheduler instance ran it")
    def instance(self) -> str | None:
        return self.domain.instance

    @strawberry.field
    async def retry_of(self, info: Info) -> Execution | None:
        if self.domain.retry_of_id is None:
            return None
        execution = await info.context.loaders.execution.load(self.domain.retry_of_id)
        return Execution(domain=execution) if execution else None


@strawberry.type
class JobEdge:
    cursor: str
    node: Job


@strawberry.type
class JobConnection:
    edges: list[JobEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class ExecutionEdge:
    cursor: str
    node: Execution


@strawberry.type
class ExecutionConnection:
    edges: list[ExecutionEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def from_page(
        cls, page: Page[domain_executions.Execution], *, has_previous: bool
    ) -> ExecutionConnection:
        edges = [
            ExecutionEdge(cursor=cursor, node=Execution(domain=execution))
            for execution, cursor in zip(page.items, page.cursors, strict=True)
        ]
        return cls(
            edges=edges,
            page_info=PageInfo.from_cursors(
                page.cursors, has_next=page.has_next_page, has_previous=has_previous
            ),
            total_count=page.total_count,
        )
