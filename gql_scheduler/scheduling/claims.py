"""Claiming due occurrences (invariant 2): one execution per (job, scheduled time), whoever
asks, and the claim's winner advances the job's watermark."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain import schedules
from gql_scheduler.domain.access import SYSTEM_ACTOR
from gql_scheduler.domain.events import JobEventType
from gql_scheduler.domain.executions import ExecutionTrigger, NewExecution
from gql_scheduler.domain.jobs import Job, JobState
from gql_scheduler.scheduling.starts import StartRequest, StartResult
from gql_scheduler.store.database import Database
from gql_scheduler.store.events import EventRepository
from gql_scheduler.store.executions import ExecutionRepository
from gql_scheduler.store.jobs import JobRepository
from gql_scheduler.store.transitions import TransitionRepository


def occurrence_key(job_id: str, scheduled_for: datetime) -> str:
    return f"{job_id}:{scheduled_for.isoformat()}"


# Compiled timelines by (job id, version): every claim asks for the job's next run.
_TIMELINES: dict[tuple[str, int], schedules.Timeline] = {}
_TIMELINES_KEPT = 200_000


def next_occurrence(job: Job, after: datetime) -> datetime | None:
    key = (job.id, job.version)
    timeline = _TIMELINES.get(key)
    if timeline is None:
        if len(_TIMELINES) >= _TIMELINES_KEPT:
            _TIMELINES.clear()  # old versions pile up otherwise; rebuilding is cheap
        spec = job.spec
        timeline = schedules.Timeline(spec.schedules, start_at=spec.start_at, end_at=spec.end_at)
        _TIMELINES[key] = timeline
    return timeline.next_after(after)


StartWithin = Callable[[AsyncConnection, list[StartRequest]], Awaitable[list[StartResult | None]]]


async def claim_occurrences(
    database: Database,
    due: Sequence[tuple[Job, datetime]],
    *,
    now: datetime,
    start: StartWithin | None = None,
) -> list[tuple[StartRequest, StartResult | None]]:
    """Claim a batch of due occurrences in one transaction (group commit).

    Returns the winners, each with its start decision when `start` could make it in the
    same transaction (None: still to be submitted for a start).
    """
    async with database.write() as connection:
        jobs = JobRepository(connection)
        # Their rows locked first, in id order (JobRepository.lock_versions says why).
        stored = await jobs.states_of([job.id for job, _ in due], lock=True)
        # Paused, completed or deleted since the timer was armed: not claimed.
        live = [(job, at) for job, at in due if job.id in stored and stored[job.id][0] is _ACTIVE]
        claimed = await TransitionRepository(connection).claim(
            [
                NewExecution(
                    job_id=job.id,
                    trigger=ExecutionTrigger.SCHEDULE,
                    scheduled_for=at,
                    idempotency_key=occurrence_key(job.id, at),
                )
                for job, at in live
            ],
            now=now,
        )
        # Only the winner of a claim advances the job (another instance did for the rest).
        won = {(claim.job_id, claim.scheduled_for) for claim in claimed}
        fired = [(job, at) for job, at in live if (job.id, at) in won]
        # The watermark moves only over occurrences that are all recorded (invariant 5):
        # after an outage the first claim would otherwise jump it past those nobody could
        # claim, and neither the reconcile loop nor a catch-up would look at them again.
        contiguous = [
            (job, at)
            for job, at in fired
            if await _recorded_up_to(connection, job, stored[job.id][1], at)
        ]
        await record_fired_many(connection, contiguous, now=now)
        requests = [StartRequest(claim.id, claim.job_id) for claim in claimed]
        results = await start(connection, requests) if start and requests else []
    return list(itertools.zip_longest(requests, results[: len(requests)]))


_ACTIVE = JobState.ACTIVE


# Beyond this many owed occurrences the watermark waits for the catch-up (which records
# them by policy) rather than counting them on a claim's transaction.
_OWED_COUNTED = 1000


async def _recorded_up_to(
    connection: AsyncConnection, job: Job, watermark: datetime | None, at: datetime
) -> bool:
    """Whether every occurrence of the job after `watermark` and before `at` is recorded.

    The usual case costs no read: `at` is the first occurrence after the watermark.
    """
    if watermark is None or watermark >= at:
        return True
    following = next_occurrence(job, watermark)
    if following is None or following >= at:
        return True
    owed = 0
    while following is not None and following < at and owed <= _OWED_COUNTED:
        owed += 1
        following = next_occurrence(job, following)
    if owed > _OWED_COUNTED:
        return False
    recorded = await ExecutionRepository(connection).count_occurrences(
        job.id, after=watermark, before=at
    )
    return recorded >= owed


async def record_fired_many(
    connection: AsyncConnection, fired: Sequence[tuple[Job, datetime]], *, now: datetime
) -> None:
    """Advance watermarks; a job with no run left becomes COMPLETED."""
    rows = [(job.id, at, next_occurrence(job, at)) for job, at in fired]
    jobs = JobRepository(connection)
    await jobs.record_fired_many(rows)
    for job_id, _, following in rows:
        if following is None and await jobs.complete(job_id, now=now):
            EventRepository(connection).append_job_event(
                JobEventType.COMPLETED, job_id=job_id, at=now, actor=SYSTEM_ACTOR
            )
