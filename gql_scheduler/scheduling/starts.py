"""Deciding, for a batch of QUEUED executions in one transaction, which start now.

The overlap policy of each job is applied against the job's unfinished executions as the
store has them, updated as the batch's own decisions are made, so two runs of one job in
the same batch see each other.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.executions import Execution, ExecutionStatus, ExecutionTrigger
from gql_scheduler.domain.jobs import Job
from gql_scheduler.domain.overlap import OverlapDecision, decide_overlap
from gql_scheduler.domain.policies import OverlapPolicy
from gql_scheduler.store.database import Database
from gql_scheduler.store.jobs import JobRepository
from gql_scheduler.store.transitions import TransitionRepository

SKIPPED_ERROR = "skipped: an earlier run of this job was still going"
_QUEUEING_TRIGGERS = frozenset({ExecutionTrigger.BACKFILL, ExecutionTrigger.CATCH_UP})
JOB_GONE_ERROR = "cancelled: the job was deleted"


@dataclass(frozen=True, slots=True)
class StartRequest:
    execution_id: str
    job_id: str
    force: bool = False


@dataclass(frozen=True, slots=True)
class StartResult:
    execution: Execution | None = None  # set when it started here
    job: Job | None = None
    cancel_ids: list[str] = field(default_factory=list)  # CANCEL_RUNNING: runs to stop
    waiting: bool = False  # stays QUEUED until a run of its job ends


class OverlapBoard:
    """The unfinished executions of the batch's jobs, kept current as decisions are made."""

    def __init__(
        self, unfinished: list[Execution], now: datetime, ended: AbstractSet[str] = frozenset()
    ) -> None:
        """`ended`: runs whose work is over though their end is not committed yet (this
        instance's own, on their way through the group commit): they hold nothing back."""
        self.now = now
        # Per job, its live runs and when each started.
        self.running: dict[str, dict[str, datetime]] = defaultdict(dict)
        self.queued: dict[str, dict[str, Execution]] = defaultdict(dict)
        for execution in unfinished:
            if execution.status is ExecutionStatus.QUEUED:
                self.queued[execution.job_id][execution.id] = execution
            elif execution.id in ended:
                continue
            elif execution.lease_until is not None and execution.lease_until >= now:
                # A lost run (expired lease) does not hold back the job's next ones.
                started = execution.started_at or now
                self.running[execution.job_id][execution.id] = started

    def decide(self, execution: Execution, job: Job, *, force: bool) -> OverlapDecision:
        others = {key: at for key, at in self.running[job.id].items() if key != execution.id}
        older = [
            other
            for other in self.queued[job.id].values()
            if int(other.id) < int(execution.id)
            and (other.run_after is None or other.run_after <= self.now)
        ]
        if execution.trigger in _QUEUEING_TRIGGERS:
            # Backfilled and caught-up runs queue up: one at a time, oldest first, never
            # skipped (RUN_ALL means each of them runs).
            waits = others or any(o.trigger is execution.trigger for o in older)
            return OverlapDecision.WAIT if waits else OverlapDecision.START
        # The overlap policy judges the runs that were going when this one was due. A run
        # that only started after that, late behind a backlog, would not have overlapped
        # it on time: this one waits for it instead of being skipped or cancelling it.
        due = execution.scheduled_for or self.now
        on_time = sum(1 for started in others.values() if started <= due)
        decision = decide_overlap(
            job.spec.overlap_policy, running=on_time, waiting=len(older), force=force
        )
        late = len(others) > on_time
        allowed = force or job.spec.overlap_policy is OverlapPolicy.ALLOW
        if decision is OverlapDecision.START and late and not allowed:
            return OverlapDecision.WAIT
        return decision

    def record(self, execution: Execution, decision: OverlapDecision) -> None:
        if decision is OverlapDecision.START:
            self.running[execution.job_id][execution.id] = self.now
        if decision in (OverlapDecision.START, OverlapDecision.SKIP):
            self.queued[execution.job_id].pop(execution.id, None)


class JobCache:
    """Jobs by id, reloaded only when their version moved: a start batch then costs one
    small locking query for its jobs instead of reading and decoding every job row."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    async def current(self, jobs: JobRepository, job_ids: list[str]) -> dict[str, Job]:
        """The jobs that exist, as stored now (their rows locked on PostgreSQL)."""
        versions = await jobs.lock_versions(job_ids)
        for job_id in set(job_ids) - set(versions):
            self._jobs.pop(job_id, None)  # deleted
        stale = [
            job_id
            for job_id, version in versions.items()
            if job_id not in self._jobs or self._jobs[job_id].version != version
        ]
        self._jobs.update(await jobs.get_many(stale))
        return {job_id: self._jobs[job_id] for job_id in versions}


async def start_batch(
    database: Database,
    requests: list[StartRequest],
    *,
    instance: str,
    lease_seconds: float,
    clock: Clock,
    job_cache: JobCache,
    ended: AbstractSet[str] = frozenset(),
) -> list[StartResult]:
    async with database.write() as connection:
        return await decide_starts(
            connection,
            requests,
            instance=instance,
            lease_seconds=lease_seconds,
            clock=clock,
            job_cache=job_cache,
            ended=ended,
        )


async def decide_starts(
    connection: AsyncConnection,
    requests: list[StartRequest],
    *,
    instance: str,
    lease_seconds: float,
    clock: Clock,
    job_cache: JobCache,
    ended: AbstractSet[str] = frozenset(),
) -> list[StartResult]:
    """`start_batch` inside a transaction the caller holds (claims start their winners)."""
    job_ids = sorted({request.job_id for request in requests})
    transitions = TransitionRepository(connection)
    # Locks the jobs' rows on PostgreSQL so that instances deciding overlap for the same
    # job take turns (SQLite's write transactions already do).
    jobs = await job_cache.current(JobRepository(connection), job_ids)
    # The clock is read once the locks are held: a start stamped with a time from before
    # waiting for them could precede the end of the run it waited for.
    now = clock.now()
    unfinished = await transitions.unfinished_of_jobs(job_ids)
    requested = {request.execution_id for request in requests}
    queued = {
        e.id: e for e in unfinished if e.id in requested and e.status is ExecutionStatus.QUEUED
    }
    board = OverlapBoard(unfinished, now, ended)
    decisions = _decide_all(requests, queued, jobs, board)
    cancel_ids = await _request_cancels(transitions, decisions, queued, board)
    started = await _apply(connection, decisions, queued, jobs, instance, lease_seconds, now)
    return [_result(request, started, jobs, decisions, cancel_ids) for request in requests]


async def _apply(
    connection: AsyncConnection,
    decisions: dict[str, OverlapDecision],
    queued: dict[str, Execution],
    jobs: dict[str, Job],
    instance: str,
    lease_seconds: float,
    now: datetime,
) -> dict[str, Execution]:
    """Write the decisions; returns the executions that started, as they now are."""
    transitions = TransitionRepository(connection)
    lease_until = now + timedelta(seconds=lease_seconds)
    started_ids = await transitions.start(
        [key for key, d in decisions.items() if d is OverlapDecision.START],
        instance=instance,
        lease_until=lease_until,
        now=now,
    )
    skip = [key for key, d in decisions.items() if d is OverlapDecision.SKIP]
    await transitions.end_queued(skip, ExecutionStatus.SKIPPED, error=SKIPPED_ERROR, now=now)
    gone = [key for key, e in queued.items() if e.job_id not in jobs]
    await transitions.end_queued(gone, ExecutionStatus.CANCELLED, error=JOB_GONE_ERROR, now=now)
    started = {
        key: dataclasses.replace(
            queued[key],
            status=ExecutionStatus.RUNNING,
            instance=instance,
            started_at=now,
            lease_until=lease_until,
        )
        for key in started_ids
    }
    await JobRepository(connection).record_started(
        sorted({e.job_id for e in started.values()}), at=now
    )
    return started


def _result(
    request: StartRequest,
    started: dict[str, Execution],
    jobs: dict[str, Job],
    decisions: dict[str, OverlapDecision],
    cancel_ids: dict[str, list[str]],
) -> StartResult:
    execution = started.get(request.execution_id)
    return StartResult(
        execution=execution,
        job=jobs.get(request.job_id) if execution else None,
        cancel_ids=cancel_ids.get(request.execution_id, []),
        waiting=decisions.get(request.execution_id)
        in (OverlapDecision.WAIT, OverlapDecision.CANCEL_RUNNING),
    )


def _decide_all(
    requests: list[StartRequest],
    queued: dict[str, Execution],
    jobs: dict[str, Job],
    board: OverlapBoard,
) -> dict[str, OverlapDecision]:
    decisions: dict[str, OverlapDecision] = {}
    for request in sorted(requests, key=lambda r: int(r.execution_id)):
        execution = queued.get(request.execution_id)
        if execution is None or request.execution_id in decisions:
            continue
        if execution.run_after is not None and execution.run_after > board.now:
            continue  # a retry whose backoff is not over
        job = jobs.get(execution.job_id)
        if job is None:
            continue
        decision = board.decide(execution, job, force=request.force)
        board.record(execution, decision)
        decisions[execution.id] = decision
    return decisions


async def _request_cancels(
    transitions: TransitionRepository,
    decisions: dict[str, OverlapDecision],
    queued: dict[str, Execution],
    board: OverlapBoard,
) -> dict[str, list[str]]:
    """CANCEL_RUNNING: ask the job's running executions to stop; the new one waits."""
    cancels: dict[str, list[str]] = {}
    for execution_id, decision in decisions.items():
        if decision is OverlapDecision.CANCEL_RUNNING:
            running = sorted(board.running[queued[execution_id].job_id])
            for running_id in running:
                await transitions.request_cancel(running_id)
            cancels[execution_id] = running
    return cancels
