"""Catching up on occurrences nobody fired (invariant 5): each is recorded by the job's
misfire policy, from its watermark on."""

from __future__ import annotations

import collections
import logging
from datetime import datetime, timedelta

from gql_scheduler.domain import schedules
from gql_scheduler.domain.executions import (
    Execution,
    ExecutionStatus,
    ExecutionTrigger,
    NewExecution,
)
from gql_scheduler.domain.jobs import Job
from gql_scheduler.domain.misfires import MISFIRE_ERROR, MisfireOutcome, plan_misfires
from gql_scheduler.domain.policies import MisfirePolicy
from gql_scheduler.scheduling.claims import occurrence_key, record_fired_many
from gql_scheduler.store.database import Database
from gql_scheduler.store.executions import ExecutionRepository
from gql_scheduler.store.transitions import TransitionRepository

log = logging.getLogger("gql_scheduler.engine")

# More missed occurrences than this for one job are not recorded one by one: the oldest
# are dropped (and logged), so one forgotten every-second job cannot flood the database.
MAX_MISSED_RECORDED = 10_000

_STATUS_OF_OUTCOME = {
    MisfireOutcome.RUN: ExecutionStatus.QUEUED,
    MisfireOutcome.MISSED: ExecutionStatus.MISSED,
    MisfireOutcome.FAILED: ExecutionStatus.FAILED,
}


def missed_occurrences(job: Job, *, now: datetime, grace: timedelta) -> list[datetime]:
    """Occurrences after the watermark that nobody fired and whose time is well past."""
    spec = job.spec
    cutoff = now - grace - timedelta(seconds=spec.jitter_seconds)
    missed: collections.deque[datetime] = collections.deque(maxlen=MAX_MISSED_RECORDED)
    seen = 0
    for at in schedules.iter_fire_times(
        spec.schedules,
        after=job.watermark or job.created_at,
        start_at=spec.start_at,
        end_at=spec.end_at,
    ):
        if at > cutoff:
            break
        missed.append(at)
        seen += 1
    if seen > len(missed):
        log.warning(
            "too many missed occurrences to record one by one; the oldest are dropped",
            extra={"action": "misfires_dropped", "job_id": job.id, "dropped": seen - len(missed)},
        )
    return list(missed)


async def catch_up(
    database: Database,
    job: Job,
    *,
    now: datetime,
    grace: timedelta,
    policy: MisfirePolicy,
) -> list[Execution]:
    """Record every missed occurrence by the misfire policy; returns those to run."""
    missed = missed_occurrences(job, now=now, grace=grace)
    if not missed:
        return []
    to_run: list[Execution] = []
    async with database.write() as connection:
        # Only those nobody recorded are owed: after an outage the instance may have
        # claimed the latest ones already, and RUN_ONCE must run the latest owed one.
        recorded = await ExecutionRepository(connection).recorded_occurrences(
            job.id, after=job.watermark or job.created_at, through=missed[-1]
        )
        owed = [at for at in missed if at not in recorded]
        plans = plan_misfires(
            owed, policy=policy, now=now, catch_up_window_seconds=job.spec.catch_up_window_seconds
        )
        transitions = TransitionRepository(connection)
        for plan in plans:
            status = _STATUS_OF_OUTCOME[plan.outcome]
            new = NewExecution(
                job_id=job.id,
                trigger=ExecutionTrigger.CATCH_UP
                if status is ExecutionStatus.QUEUED
                else ExecutionTrigger.SCHEDULE,
                scheduled_for=plan.scheduled_for,
                idempotency_key=occurrence_key(job.id, plan.scheduled_for),
                status=status,
                error=None if status is ExecutionStatus.QUEUED else MISFIRE_ERROR,
            )
            execution = await transitions.insert(new, now=now)
            if execution is not None and status is ExecutionStatus.QUEUED:
                to_run.append(execution)
        await record_fired_many(connection, [(job, missed[-1])], now=now)
    return to_run
