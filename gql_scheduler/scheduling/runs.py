"""Running one execution: its action under the job's timeout, with cancellation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gql_scheduler.actions.base import ActionRunner, RunContext
from gql_scheduler.actions.output_collector import OutputCollector
from gql_scheduler.domain.executions import Execution, ExecutionStatus, Outcome
from gql_scheduler.domain.jobs import Job


@dataclass(eq=False)
class Run:
    """An execution running on this instance."""

    execution: Execution
    job: Job
    task: asyncio.Task[None] | None = None
    # Set by whoever cancels the task on purpose; None means the run is interrupted (the
    # instance stops, or its lease cannot be renewed), which `interrupted_by` then says.
    cancel_reason: str | None = None
    interrupted_by: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def run_action(run: Run, runners: ActionRunner, collector: OutputCollector) -> Outcome:
    """The outcome of running the job's action once; CancelledError only when stopping."""
    execution, job = run.execution, run.job
    context = RunContext(
        execution_id=execution.id,
        job_id=job.id,
        job_name=job.spec.name,
        scheduled_for=execution.scheduled_for,
        attempt=execution.attempt,
        idempotency_key=execution.idempotency_key,
    )
    timeout = job.spec.timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            result = await runners.run(job.spec.action, context, collector)
    except TimeoutError:
        return Outcome(
            ExecutionStatus.TIMED_OUT,
            output=collector.text(),
            error=f"timed out after {timeout:g} s",
        )
    except asyncio.CancelledError:
        if run.cancel_reason is None:
            raise
        return Outcome(ExecutionStatus.CANCELLED, output=collector.text(), error=run.cancel_reason)
    status = ExecutionStatus.SUCCEEDED if result.succeeded else ExecutionStatus.FAILED
    return Outcome(status, result.result_code, collector.text(), result.error)
