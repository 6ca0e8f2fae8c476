"""The Mutation root: every expected failure comes back as `errors`, and changes nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from gql_scheduler.api import convert, inputs
from gql_scheduler.api.context import Info
from gql_scheduler.api.errors import collect_user_errors
from gql_scheduler.api.nodes import Execution, Job
from gql_scheduler.api.types import UserError
from gql_scheduler.domain import executions as domain_executions
from gql_scheduler.domain import jobs as domain_jobs


@strawberry.type
class JobPayload:
    job: Job | None
    errors: list[UserError]

    @classmethod
    def of(cls, job: domain_jobs.Job | None, errors: list[UserError]) -> JobPayload:
        return cls(job=Job(domain=job) if job else None, errors=errors)


@strawberry.type
class DeleteJobPayload:
    deleted_job_id: strawberry.ID | None
    errors: list[UserError]


@strawberry.type
class ExecutionPayload:
    execution: Execution | None
    errors: list[UserError]

    @classmethod
    def of(
        cls, execution: domain_executions.Execution | None, errors: list[UserError]
    ) -> ExecutionPayload:
        return cls(execution=Execution(domain=execution) if execution else None, errors=errors)


@strawberry.type
class BackfillPayload:
    executions: list[Execution]
    errors: list[UserError]


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_job(self, info: Info, input: inputs.CreateJobInput) -> JobPayload:
        async def create() -> domain_jobs.Job:
            return await info.context.jobs.create_job(
                convert.job_spec(input),
                convert.schedule_drafts(input.schedules),
                paused=bool(input.paused),
            )

        return JobPayload.of(*await collect_user_errors(create()))

    @strawberry.mutation
    async def update_job(
        self, info: Info, id: strawberry.ID, input: inputs.UpdateJobInput
    ) -> JobPayload:
        async def update() -> domain_jobs.Job:
            drafts = (
                convert.schedule_drafts(input.schedules)
                if input.schedules not in (None, strawberry.UNSET)
                else None
            )
            return await info.context.jobs.update_job(str(id), convert.job_changes(input), drafts)

        return JobPayload.of(*await collect_user_errors(update()))

    @strawberry.mutation
    async def delete_job(self, info: Info, id: strawberry.ID) -> DeleteJobPayload:
        deleted, errors = await collect_user_errors(info.context.jobs.delete_job(str(id)))
        return DeleteJobPayload(
            deleted_job_id=strawberry.ID(deleted) if deleted else None, errors=errors
        )

    @strawberry.mutation
    async def pause_job(self, info: Info, id: strawberry.ID, note: str | None = None) -> JobPayload:
        return JobPayload.of(*await collect_user_errors(info.context.jobs.pause_job(str(id), note)))

    @strawberry.mutation
    async def resume_job(self, info: Info, id: strawberry.ID) -> JobPayload:
        return JobPayload.of(*await collect_user_errors(info.context.jobs.resume_job(str(id))))

    @strawberry.mutation(
        description=(
            "Run now, outside the schedule. The overlap policy still applies unless force is true."
        )
    )
    async def trigger_job(
        self, info: Info, id: strawberry.ID, force: bool | None = False
    ) -> ExecutionPayload:
        executions = info.context.executions
        return ExecutionPayload.of(
            *await collect_user_errors(executions.trigger_job(str(id), force=bool(force)))
        )

    @strawberry.mutation(
        description=(
            "A queued run is cancelled at once; a running one is stopped by the instance "
            "running it (the reply may still say RUNNING when that is another instance)."
        )
    )
    async def cancel_execution(self, info: Info, id: strawberry.ID) -> ExecutionPayload:
        executions = info.context.executions
        return ExecutionPayload.of(*await collect_user_errors(executions.cancel_execution(str(id))))

    @strawberry.mutation(
        description="Run a failed, timed out, cancelled, skipped or missed execution again, now."
    )
    async def retry_execution(self, info: Info, id: strawberry.ID) -> ExecutionPayload:
        executions = info.context.executions
        return ExecutionPayload.of(*await collect_user_errors(executions.retry_execution(str(id))))

    @strawberry.mutation(
        description=(
            "Create the runs the schedules would have made between from and to (at most 1000)."
            " The window is [from, to); occurrences that already have a run are left alone."
        )
    )
    async def backfill_job(
        self,
        info: Info,
        id: strawberry.ID,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
    ) -> BackfillPayload:
        created, errors = await collect_user_errors(
            info.context.executions.backfill_job(str(id), from_, to)
        )
        return BackfillPayload(
            executions=[Execution(domain=item) for item in created or []], errors=errors
        )
