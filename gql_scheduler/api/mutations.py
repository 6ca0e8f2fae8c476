"""The Mutation root: every expected failure comes back as `errors`, and changes nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from gql_scheduler.api import convert, inputs
from gql_scheduler.api.access import NeedsAdmin, NeedsOperator
from gql_scheduler.api.context import Info
from gql_scheduler.api.errors import collect_user_errors
from gql_scheduler.api.nodes import Execution, Job
from gql_scheduler.api.types import UserError
from gql_scheduler.domain import executions as domain_executions
from gql_scheduler.domain import jobs as domain_jobs

# The use cases call these job_id and execution_id, the contract calls both `id`: with the
# use cases' names in Python, field_paths.py maps their errors onto the arguments.
JobId = Annotated[strawberry.ID, strawberry.argument(name="id")]
ExecutionId = Annotated[strawberry.ID, strawberry.argument(name="id")]


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
    @strawberry.mutation(permission_classes=[NeedsAdmin], description="Needs the admin role.")
    async def create_job(self, info: Info, input: inputs.CreateJobInput) -> JobPayload:
        async def create() -> domain_jobs.Job:
            return await info.context.jobs.create_job(
                convert.job_spec(input),
                convert.schedule_drafts(input.schedules),
                paused=bool(input.paused),
                actor=info.context.actor,
            )

        return JobPayload.of(*await collect_user_errors(info, create(), within="input"))

    @strawberry.mutation(permission_classes=[NeedsAdmin], description="Needs the admin role.")
    async def update_job(
        self, info: Info, job_id: JobId, input: inputs.UpdateJobInput
    ) -> JobPayload:
        async def update() -> domain_jobs.Job:
            drafts = (
                convert.schedule_drafts(input.schedules)
                if input.schedules not in (None, strawberry.UNSET)
                else None
            )
            changes = convert.job_changes(input)
            return await info.context.jobs.update_job(
                str(job_id), changes, drafts, actor=info.context.actor
            )

        return JobPayload.of(*await collect_user_errors(info, update(), within="input"))

    @strawberry.mutation(permission_classes=[NeedsAdmin], description="Needs the admin role.")
    async def delete_job(self, info: Info, job_id: JobId) -> DeleteJobPayload:
        deleting = info.context.jobs.delete_job(str(job_id), actor=info.context.actor)
        deleted, errors = await collect_user_errors(info, deleting)
        return DeleteJobPayload(
            deleted_job_id=strawberry.ID(deleted) if deleted else None, errors=errors
        )

    @strawberry.mutation(permission_classes=[NeedsOperator], description="Needs the operator role.")
    async def pause_job(self, info: Info, job_id: JobId, note: str | None = None) -> JobPayload:
        pausing = info.context.jobs.pause_job(str(job_id), note, actor=info.context.actor)
        return JobPayload.of(*await collect_user_errors(info, pausing))

    @strawberry.mutation(permission_classes=[NeedsOperator], description="Needs the operator role.")
    async def resume_job(self, info: Info, job_id: JobId) -> JobPayload:
        resuming = info.context.jobs.resume_job(str(job_id), actor=info.context.actor)
        return JobPayload.of(*await collect_user_errors(info, resuming))

    @strawberry.mutation(
        permission_classes=[NeedsOperator],
        description=(
            "Run now, outside the schedule. The overlap policy still applies unless force is "
            "true. Needs the operator role."
        ),
    )
    async def trigger_job(
        self, info: Info, job_id: JobId, force: bool | None = False
    ) -> ExecutionPayload:
        triggering = info.context.executions.trigger_job(
            str(job_id), force=bool(force), actor=info.context.actor
        )
        return ExecutionPayload.of(*await collect_user_errors(info, triggering))

    @strawberry.mutation(
        permission_classes=[NeedsOperator],
        description=(
            "A queued run is cancelled at once; a running one is stopped by the instance "
            "running it (the reply may still say RUNNING when that is another instance). "
            "Needs the operator role."
        ),
    )
    async def cancel_execution(self, info: Info, execution_id: ExecutionId) -> ExecutionPayload:
        cancelling = info.context.executions.cancel_execution(
            str(execution_id), actor=info.context.actor
        )
        return ExecutionPayload.of(*await collect_user_errors(info, cancelling))

    @strawberry.mutation(
        permission_classes=[NeedsOperator],
        description="Run a failed, timed out, cancelled, skipped or missed execution again, "
        "now. Needs the operator role.",
    )
    async def retry_execution(self, info: Info, execution_id: ExecutionId) -> ExecutionPayload:
        retrying = info.context.executions.retry_execution(
            str(execution_id), actor=info.context.actor
        )
        return ExecutionPayload.of(*await collect_user_errors(info, retrying))

    @strawberry.mutation(
        permission_classes=[NeedsAdmin],
        description=(
            "Create the runs the schedules would have made between from and to (at most 1000)."
            " The window is [from, to); occurrences that already have a run are left alone."
            " Needs the admin role."
        ),
    )
    async def backfill_job(
        self,
        info: Info,
        job_id: JobId,
        start: Annotated[datetime, strawberry.argument(name="from")],
        end: Annotated[datetime, strawberry.argument(name="to")],
    ) -> BackfillPayload:
        backfilling = info.context.executions.backfill_job(
            str(job_id), start, end, actor=info.context.actor
        )
        created, errors = await collect_user_errors(info, backfilling)
        return BackfillPayload(
            executions=[Execution(domain=item) for item in created or []], errors=errors
        )
