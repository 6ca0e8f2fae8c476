"""Deciding, in one transaction, whether a QUEUED execution starts now (overlap policies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.executions import Execution, ExecutionStatus, ExecutionTrigger
from gql_scheduler.domain.jobs import Job
from gql_scheduler.domain.overlap import OverlapDecision, decide_overlap
from gql_scheduler.store.engine import Database
from gql_scheduler.store.jobs import JobRepository
from gql_scheduler.store.transitions import TransitionRepository

SKIPPED_ERROR = "skipped: an earlier run of this job was still going"
JOB_GONE_ERROR = "cancelled: the job was deleted"


@dataclass(frozen=True, slots=True)
class StartResult:
    execution: Execution | None = None  # set when it started here
    job: Job | None = None
    cancel_ids: list[str] = field(default_factory=list)  # CANCEL_RUNNING: runs to stop


async def try_start(
    database: Database,
    execution_id: str,
    *,
    instance: str,
    lease_seconds: float,
    clock: Clock,
    force: bool = False,
) -> StartResult:
    async with database.write() as connection:
        transitions = TransitionRepository(connection)
        execution = await transitions.get(execution_id)
        if execution is None or execution.status is not ExecutionStatus.QUEUED:
            return StartResult()
        # Locks the job row on PostgreSQL so that two instances deciding overlap for the
        # same job take turns (SQLite's write transactions already do).
        job = await JobRepository(connection).get(execution.job_id, for_update=True)
        # Read the clock only now that the locks are held: a start recorded with a time
        # from before waiting for them could precede the end of the run it waited for.
        now = clock.now()
        if execution.run_after is not None and execution.run_after > now:
            return StartResult()
        if job is None:
            await transitions.end_queued(
                execution_id, ExecutionStatus.CANCELLED, now=now, error=JOB_GONE_ERROR
            )
            return StartResult()
        running, waiting = await transitions.live_counts(job.id, now=now, exclude_id=execution_id)
        if execution.trigger is ExecutionTrigger.BACKFILL:
            # Backfilled runs queue up: one at a time, oldest first, never skipped.
            decision = await _backfill_decision(transitions, execution, running, now=now)
        else:
            decision = decide_overlap(
                job.spec.overlap_policy, running=running, waiting=waiting, force=force
            )
        if decision is OverlapDecision.SKIP:
            await transitions.end_queued(
                execution_id, ExecutionStatus.SKIPPED, now=now, error=SKIPPED_ERROR
            )
            return StartResult()
        if decision is OverlapDecision.WAIT:
            return StartResult()
        if decision is OverlapDecision.CANCEL_RUNNING:
            to_cancel = await transitions.running_ids(job.id, now=now)
            for running_id in to_cancel:
                await transitions.request_cancel(running_id)
            return StartResult(cancel_ids=to_cancel)
        lease_until = now + timedelta(seconds=lease_seconds)
        started = await transitions.start(
            execution_id, instance=instance, lease_until=lease_until, now=now
        )
        if started is not None:
            await JobRepository(connection).record_started(job.id, at=now)
        return StartResult(execution=started, job=job)


async def _backfill_decision(
    transitions: TransitionRepository, execution: Execution, running: int, *, now: datetime
) -> OverlapDecision:
    if running:
        return OverlapDecision.WAIT
    older = await transitions.older_queued(execution, trigger=ExecutionTrigger.BACKFILL)
    return OverlapDecision.WAIT if older else OverlapDecision.START
