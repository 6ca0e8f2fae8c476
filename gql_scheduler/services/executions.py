"""Use cases on executions: run now, cancel, retry, backfill, and history statistics."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from gql_scheduler.domain import schedules
from gql_scheduler.domain.access import SYSTEM_ACTOR
from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.errors import Conflict, InvalidInput, NotFound
from gql_scheduler.domain.events import ExecutionEventType
from gql_scheduler.domain.executions import (
    Execution,
    ExecutionFilter,
    ExecutionStats,
    ExecutionStatus,
    ExecutionTrigger,
    NewExecution,
)
from gql_scheduler.domain.jobs import Job
from gql_scheduler.domain.pages import Page
from gql_scheduler.scheduling.claims import occurrence_key
from gql_scheduler.scheduling.dispatcher import Dispatcher
from gql_scheduler.scheduling.finishes import retry_of
from gql_scheduler.services import validation
from gql_scheduler.store.database import Database
from gql_scheduler.store.events import EventRepository
from gql_scheduler.store.executions import ExecutionRepository, job_stats
from gql_scheduler.store.jobs import JobRepository
from gql_scheduler.store.transitions import TransitionRepository

log = logging.getLogger("gql_scheduler.service")

MAX_BACKFILL = 1000
CANCELLED_BY_REQUEST = "cancelled by request"
# How long a mutation waits to report the state its run reached (started, skipped...).
SETTLE_SECONDS = 2.0
_RETRYABLE = frozenset(
    {
        ExecutionStatus.FAILED,
        ExecutionStatus.TIMED_OUT,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.SKIPPED,
        ExecutionStatus.MISSED,
    }
)


class ExecutionService:
    def __init__(self, database: Database, clock: Clock, dispatcher: Dispatcher) -> None:
        self.database = database
        self.clock = clock
        self.dispatcher = dispatcher

    async def trigger_job(
        self, job_id: str, *, force: bool, actor: str = SYSTEM_ACTOR
    ) -> Execution:
        now = self.clock.now()
        async with self.database.write() as connection:
            job = await _require_job(JobRepository(connection), job_id)
            new = NewExecution(
                job_id=job.id,
                trigger=ExecutionTrigger.MANUAL,
                scheduled_for=now,
                idempotency_key=f"{job.id}:manual:{uuid.uuid4()}",
                triggered_by=actor,
            )
            execution = await TransitionRepository(connection).insert(new, now=now)
        assert execution is not None  # manual runs are never deduplicated
        _log_change("triggered", execution, actor)
        self.dispatcher.submit(execution.id, execution.job_id, force=force)
        return await self._settled(execution)

    async def cancel_execution(self, execution_id: str, *, actor: str = SYSTEM_ACTOR) -> Execution:
        now = self.clock.now()
        async with self.database.write() as connection:
            transitions = TransitionRepository(connection)
            execution = await _require_execution(ExecutionRepository(connection), execution_id)
            if execution.status.is_terminal:
                raise Conflict(
                    f"the execution has already ended ({execution.status})", field=["execution_id"]
                )
            if execution.status is ExecutionStatus.QUEUED:
                ended = await transitions.end_queued(
                    [execution_id], ExecutionStatus.CANCELLED, error=CANCELLED_BY_REQUEST, now=now
                )
                if ended:  # else it started meanwhile: stop it as a running one
                    _log_change("cancelled", execution, actor)
                    return await _require_execution(ExecutionRepository(connection), execution_id)
            await transitions.request_cancel(execution_id)
            # The owner hears of it on commit (the broker), or at its next lease renewal.
            EventRepository(connection).signal_cancel(execution_id)
        _log_change("cancelled", execution, actor)
        # Ours: stop it now.
        await self.dispatcher.cancel_local([execution_id], CANCELLED_BY_REQUEST)
        return await self._current(execution_id)

    async def retry_execution(self, execution_id: str, *, actor: str = SYSTEM_ACTOR) -> Execution:
        now = self.clock.now()
        async with self.database.write() as connection:
            execution = await _require_execution(ExecutionRepository(connection), execution_id)
            if execution.status not in _RETRYABLE:
                raise Conflict(
                    f"only a failed, timed out, cancelled, skipped or missed execution can be "
                    f"retried; this one is {execution.status}",
                    field=["execution_id"],
                )
            await _require_job(JobRepository(connection), execution.job_id)
            new = dataclasses.replace(retry_of(execution, run_after=now), triggered_by=actor)
            retry = await TransitionRepository(connection).insert(
                new, now=now, event=ExecutionEventType.QUEUED
            )
        assert retry is not None
        _log_change("retried", retry, actor)
        self.dispatcher.submit(retry.id, retry.job_id, force=True)
        return await self._settled(retry)

    async def backfill_job(
        self, job_id: str, start: datetime, end: datetime, *, actor: str = SYSTEM_ACTOR
    ) -> list[Execution]:
        """Runs for the occurrences in [start, end) that have none yet, oldest first."""
        now = self.clock.now()
        if end <= start:
            raise InvalidInput("must be after from", field=["end"])
        if end > now:
            raise InvalidInput("must not be in the future", field=["end"])
        created: list[Execution] = []
        async with self.database.write() as connection:
            job = await _require_job(JobRepository(connection), job_id)
            transitions = TransitionRepository(connection)
            for at in _occurrences_between(job, start, end):
                new = NewExecution(
                    job_id=job.id,
                    trigger=ExecutionTrigger.BACKFILL,
                    scheduled_for=at,
                    idempotency_key=occurrence_key(job.id, at),
                    triggered_by=actor,
                )
                execution = await transitions.insert(new, now=now)
                if execution is not None:
                    created.append(execution)
        log.info(
            "job backfilled: %d runs by %s",
            len(created),
            actor,
            extra={"action": "job_backfilled", "job_id": job_id, "actor": actor},
        )
        if created:
            # The rest follow it, one at a time.
            self.dispatcher.submit(created[0].id, created[0].job_id)
        return created

    async def get_many(self, execution_ids: Sequence[str]) -> dict[str, Execution]:
        async with self.database.read() as connection:
            return await ExecutionRepository(connection).get_many(execution_ids)

    async def latest_of_jobs(self, job_ids: Sequence[str]) -> dict[str, Execution]:
        """Each job's newest execution, by job id."""
        async with self.database.read() as connection:
            return await ExecutionRepository(connection).latest_for_jobs(job_ids)

    async def list_executions(
        self, execution_filter: ExecutionFilter, *, first: int, after: str | None
    ) -> Page[Execution]:
        validation.check_page_size(first)
        async with self.database.read() as connection:
            return await ExecutionRepository(connection).list_page(execution_filter, first, after)

    async def stats(self, job_id: str, since: datetime | None) -> ExecutionStats:
        async with self.database.read() as connection:
            return await job_stats(connection, job_id, since)

    async def _settled(self, execution: Execution) -> Execution:
        """The execution once its start was decided (bounded wait), for the mutation's reply."""
        try:
            async with asyncio.timeout(SETTLE_SECONDS):
                await self.dispatcher.wait_started(execution.id)
        except TimeoutError:
            pass  # still queued (all slots busy): the reply says QUEUED
        return await self._current(execution.id)

    async def _current(self, execution_id: str) -> Execution:
        async with self.database.read() as connection:
            execution = await ExecutionRepository(connection).get(execution_id)
        assert execution is not None
        return execution


def _log_change(change: str, execution: Execution, actor: str) -> None:
    log.info(
        "execution %s %s by %s",
        execution.id,
        change,
        actor,
        extra={
            "action": f"execution_{change}",
            "job_id": execution.job_id,
            "execution_id": execution.id,
            "actor": actor,
        },
    )


def _occurrences_between(job: Job, start: datetime, end: datetime) -> list[datetime]:
    spec = job.spec
    found: list[datetime] = []
    for at in schedules.iter_fire_times(
        spec.schedules,
        after=start - timedelta(microseconds=1),
        start_at=spec.start_at,
        end_at=spec.end_at,
    ):
        if at >= end:
            break
        if len(found) == MAX_BACKFILL:
            raise InvalidInput(
                f"the window holds more than {MAX_BACKFILL} runs; backfill a shorter one",
                field=["start"],
            )
        found.append(at)
    return found


async def _require_job(jobs: JobRepository, job_id: str) -> Job:
    job = await jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id!r}", field=["job_id"])
    return job


async def _require_execution(executions: ExecutionRepository, execution_id: str) -> Execution:
    execution = await executions.get(execution_id)
    if execution is None:
        raise NotFound(f"no execution with id {execution_id!r}", field=["execution_id"])
    return execution
