"""The Query root."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from gql_scheduler.api import convert, inputs
from gql_scheduler.api.context import Info
from gql_scheduler.api.errors import raise_as_graphql_error, user_errors
from gql_scheduler.api.nodes import (
    PAGE_SIZE,
    RUN_COUNT,
    Execution,
    ExecutionConnection,
    Job,
    JobConnection,
    JobEdge,
)
from gql_scheduler.api.types import Health, PageInfo, SchedulePreview
from gql_scheduler.domain.errors import InputErrors, UserInputError
from gql_scheduler.domain.jobs import JobOrder


@strawberry.type
class Query:
    @strawberry.field(description="A job by id, by name, or by both (then both must match).")
    async def job(
        self,
        info: Info,
        job_id: Annotated[strawberry.ID | None, strawberry.argument(name="id")] = None,
        name: str | None = None,
    ) -> Job | None:
        with raise_as_graphql_error(info):
            job = await info.context.jobs.get_job(
                job_id=str(job_id) if job_id is not None else None, name=name
            )
        return Job(domain=job) if job else None

    @strawberry.field
    async def jobs(
        self,
        info: Info,
        first: Annotated[int | None, PAGE_SIZE] = 50,
        after: str | None = None,
        filter: inputs.JobFilter | None = None,
        order_by: JobOrder | None = JobOrder.NAME_ASC,
    ) -> JobConnection:
        with raise_as_graphql_error(info):
            page = await info.context.jobs.list_jobs(
                convert.job_filter(filter),
                order_by or JobOrder.NAME_ASC,
                first=50 if first is None else first,
                after=after,
            )
        edges = [
            JobEdge(cursor=cursor, node=Job(domain=job))
            for job, cursor in zip(page.items, page.cursors, strict=True)
        ]
        page_info = PageInfo.from_cursors(
            page.cursors, has_next=page.has_next_page, has_previous=after is not None
        )
        return JobConnection(edges=edges, page_info=page_info, total_count=page.total_count)

    @strawberry.field
    async def execution(self, info: Info, id: strawberry.ID) -> Execution | None:
        execution = await info.context.loaders.execution.load(str(id))
        return Execution(domain=execution) if execution else None

    @strawberry.field(description="Newest first.")
    async def executions(
        self,
        info: Info,
        first: Annotated[int | None, PAGE_SIZE] = 50,
        after: str | None = None,
        filter: inputs.ExecutionFilter | None = None,
    ) -> ExecutionConnection:
        with raise_as_graphql_error(info):
            page = await info.context.executions.list_executions(
                convert.execution_filter(filter), first=50 if first is None else first, after=after
            )
        return ExecutionConnection.from_page(page, has_previous=after is not None)

    @strawberry.field(
        description=(
            "Validate schedules and show their next runs (strictly after `after`, default now) "
            "without creating anything."
        )
    )
    def preview_schedule(
        self,
        info: Info,
        schedules: list[inputs.ScheduleInput],
        count: Annotated[int | None, RUN_COUNT] = 5,
        after: datetime | None = None,
    ) -> SchedulePreview:
        try:
            preview = info.context.jobs.preview_schedules(
                convert.schedule_drafts(schedules), count=5 if count is None else count, after=after
            )
        except (InputErrors, UserInputError) as error:
            return SchedulePreview(runs=[], descriptions=[], errors=user_errors(info, error))
        return SchedulePreview(runs=preview.runs, descriptions=preview.descriptions, errors=[])

    @strawberry.field
    async def health(self, info: Info) -> Health:
        report = await info.context.jobs.health()
        server = info.context.server
        return Health(
            status="ok" if report.database else "degraded",
            version=server.version,
            instance=server.instance,
            database=report.database,
            scheduler_running=server.scheduler_running(),
            active_jobs=report.active_jobs,
            running_executions=report.running_executions,
        )
