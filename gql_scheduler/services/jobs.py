"""The use cases. Each mutation is one transaction: the change and its event, or nothing."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exc as sa_exc

from gql_scheduler.domain import schedules
from gql_scheduler.domain.access import SYSTEM_ACTOR
from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.errors import (
    Conflict,
    ErrorCollector,
    InvalidInput,
    NotFound,
    Unavailable,
)
from gql_scheduler.domain.events import JobEventType
from gql_scheduler.domain.jobs import Job, JobFilter, JobOrder, JobSpec, JobState
from gql_scheduler.domain.pages import Page
from gql_scheduler.domain.policies import MisfirePolicy
from gql_scheduler.services import validation
from gql_scheduler.services.validation import ScheduleDraft, ServerPolicy
from gql_scheduler.store.database import Database
from gql_scheduler.store.events import EventRepository
from gql_scheduler.store.executions import ExecutionRepository
from gql_scheduler.store.jobs import JobRepository

log = logging.getLogger("gql_scheduler.service")

# Spec fields whose change moves the job's timeline (next run, watermark).
_TIMING_FIELDS = frozenset({"schedules", "start_at", "end_at"})


@dataclass(frozen=True, slots=True)
class SchedulePreview:
    runs: list[datetime]
    descriptions: list[str]


@dataclass(frozen=True, slots=True)
class HealthReport:
    database: bool
    active_jobs: int
    running_executions: int


class JobService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        policy: ServerPolicy,
        *,
        default_misfire_policy: MisfirePolicy,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.policy = policy
        self.default_misfire_policy = default_misfire_policy
        # Told each changed job's id after its commit (the engine re-arms its timer).
        self.on_change = on_change

    # ------------------------------------------------------------------ mutations
    async def create_job(
        self,
        spec: JobSpec,
        schedule_drafts: Sequence[ScheduleDraft],
        *,
        paused: bool = False,
        actor: str = SYSTEM_ACTOR,
    ) -> Job:
        now = self.clock.now()
        spec = validation.keep_stored_secrets(spec, stored=None)
        spec = self._complete_spec(spec, schedule_drafts, now=now)
        validation.check_spec(spec, policy=self.policy, now=now)
        state = JobState.PAUSED if paused else JobState.ACTIVE
        job = Job(
            id=str(uuid.uuid4()),
            spec=spec,
            state=state,
            created_at=now,
            updated_at=now,
            # Nothing before creation is owed: recovery starts from here (invariant 5).
            watermark=now,
        )
        _require_a_run(job)
        job = dataclasses.replace(job, next_run_at=self._next_run(job, now))
        async with self.database.write() as connection:
            await JobRepository(connection).insert(job)
            EventRepository(connection).append_job_event(
                JobEventType.CREATED, job_id=job.id, at=now, actor=actor
            )
        self._changed(job, "created", actor)
        return job

    async def update_job(
        self,
        job_id: str,
        changes: Mapping[str, Any],
        schedule_drafts: Sequence[ScheduleDraft] | None = None,
        *,
        actor: str = SYSTEM_ACTOR,
    ) -> Job:
        """Replace the given spec fields; `changes` holds JobSpec field names."""
        now = self.clock.now()
        async with self.database.write() as connection:
            jobs = JobRepository(connection)
            current = await self._require(jobs, job_id)
            spec = dataclasses.replace(current.spec, **changes)
            if "action" in changes:
                spec = validation.keep_stored_secrets(spec, stored=current.spec.action)
            if schedule_drafts is not None:
                spec = self._complete_spec(spec, schedule_drafts, now=now)
            else:
                spec = dataclasses.replace(spec, tags=validation.normalize_tags(spec.tags))
            validation.check_spec(
                spec, policy=self.policy, now=now, check_schedule_times=schedule_drafts is not None
            )
            job = self._updated(
                current,
                spec,
                now=now,
                timing_changed=bool(_TIMING_FIELDS & set(changes) or schedule_drafts is not None),
            )
            await jobs.update(job)
            EventRepository(connection).append_job_event(
                JobEventType.UPDATED, job_id=job.id, at=now, actor=actor
            )
        self._changed(job, "updated", actor)
        return job

    async def delete_job(self, job_id: str, *, actor: str = SYSTEM_ACTOR) -> str:
        now = self.clock.now()
        async with self.database.write() as connection:
            jobs = JobRepository(connection)
            job = await self._require(jobs, job_id)
            await jobs.delete(job_id)
            EventRepository(connection).append_job_event(
                JobEventType.DELETED, job_id=job_id, at=now, actor=actor
            )
        self._changed(job, "deleted", actor)
        return job_id

    async def pause_job(self, job_id: str, note: str | None, *, actor: str = SYSTEM_ACTOR) -> Job:
        validation.check_note(note, self.policy.inputs)
        now = self.clock.now()
        async with self.database.write() as connection:
            jobs = JobRepository(connection)
            current = await self._require(jobs, job_id)
            if current.state is JobState.COMPLETED:
                raise Conflict("a completed job cannot be paused", field=["job_id"])
            if current.state is JobState.PAUSED and current.pause_note == note:
                return current  # pausing twice is not an error, and not a new event
            job = dataclasses.replace(
                current,
                state=JobState.PAUSED,
                pause_note=note,
                next_run_at=None,
                updated_at=now,
                version=current.version + 1,
            )
            await jobs.update(job)
            EventRepository(connection).append_job_event(
                JobEventType.PAUSED, job_id=job.id, at=now, actor=actor, payload={"note": note}
            )
        self._changed(job, "paused", actor)
        return job

    async def resume_job(self, job_id: str, *, actor: str = SYSTEM_ACTOR) -> Job:
        now = self.clock.now()
        async with self.database.write() as connection:
            jobs = JobRepository(connection)
            current = await self._require(jobs, job_id)
            if current.state is JobState.COMPLETED:
                raise Conflict(
                    "the job has completed; update its schedules or endAt to run it again",
                    field=["job_id"],
                )
            if current.state is JobState.ACTIVE:
                return current
            # Runs that fell inside the pause are skipped on purpose, not misfires.
            job = dataclasses.replace(
                current,
                state=JobState.ACTIVE,
                pause_note=None,
                watermark=max(now, current.watermark or now),
                updated_at=now,
                version=current.version + 1,
            )
            job = dataclasses.replace(job, next_run_at=self._next_run(job, now))
            await jobs.update(job)
            EventRepository(connection).append_job_event(
                JobEventType.RESUMED, job_id=job.id, at=now, actor=actor
            )
        self._changed(job, "resumed", actor)
        return job

    # ------------------------------------------------------------------ queries
    async def get_job(self, *, job_id: str | None = None, name: str | None = None) -> Job | None:
        """By id, by name, or by both (then both must match)."""
        if job_id is None and name is None:
            raise InvalidInput("give the job's id or its name", field=["job_id"])
        async with self.database.read() as connection:
            jobs = JobRepository(connection)
            if job_id is None:
                return await jobs.get_by_name(str(name))
            job = await jobs.get(job_id)
            return job if job is not None and name in (None, job.spec.name) else None

    async def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        async with self.database.read() as connection:
            return await JobRepository(connection).get_many(job_ids)

    async def list_jobs(
        self, job_filter: JobFilter, order: JobOrder, *, first: int, after: str | None
    ) -> Page[Job]:
        validation.check_page_size(first)
        async with self.database.read() as connection:
            return await JobRepository(connection).list_page(job_filter, order, first, after)

    def upcoming_runs(self, job: Job, count: int) -> list[datetime]:
        if job.state is not JobState.ACTIVE:
            return []
        validation.check_count(count)
        spec = job.spec
        after = max(self.clock.now(), job.watermark or job.created_at)
        return schedules.upcoming_runs(
            spec.schedules, after=after, count=count, start_at=spec.start_at, end_at=spec.end_at
        )

    def misfire_policy_of(self, job: Job) -> MisfirePolicy:
        return job.spec.misfire_policy or self.default_misfire_policy

    def preview_schedules(
        self, drafts: Sequence[ScheduleDraft], *, count: int, after: datetime | None
    ) -> SchedulePreview:
        now = self.clock.now()
        validation.check_count(count)
        items = tuple(validation.schedule_from_draft(draft, now=now) for draft in drafts)
        found = ErrorCollector()
        validation.check_schedules(found, items, now=now, limits=self.policy.inputs)
        found.raise_if_any()
        runs = schedules.upcoming_runs(items, after=after or now, count=count)
        return SchedulePreview(runs, [schedules.describe_schedule(item) for item in items])

    async def health(self) -> HealthReport:
        """Never raises: an unreachable or unmigrated database reads as `database=False`."""
        try:
            async with self.database.read() as connection:
                active = await JobRepository(connection).count_in_state(JobState.ACTIVE)
                running = await ExecutionRepository(connection).count_running()
        except (OSError, sa_exc.SQLAlchemyError, Unavailable) as error:
            log.warning(
                "database unavailable", extra={"action": "health_degraded", "error": str(error)}
            )
            return HealthReport(database=False, active_jobs=0, running_executions=0)
        return HealthReport(database=True, active_jobs=active, running_executions=running)

    # ------------------------------------------------------------------ helpers
    def _changed(self, job: Job, change: str, actor: str) -> None:
        """After the commit: logged with who made it, and told to the engine."""
        log.info(
            "job %s: %s by %s",
            change,
            job.spec.name,
            actor,
            extra={"action": f"job_{change}", "job_id": job.id, "actor": actor},
        )
        if self.on_change is not None:
            self.on_change(job.id)

    def _complete_spec(
        self, spec: JobSpec, drafts: Sequence[ScheduleDraft], *, now: datetime
    ) -> JobSpec:
        return dataclasses.replace(
            spec,
            schedules=tuple(validation.schedule_from_draft(draft, now=now) for draft in drafts),
            tags=validation.normalize_tags(spec.tags),
        )

    def _updated(self, current: Job, spec: JobSpec, *, now: datetime, timing_changed: bool) -> Job:
        job = dataclasses.replace(current, spec=spec, updated_at=now, version=current.version + 1)
        if not timing_changed:
            return job
        # A new timeline owes nothing from before the change (invariant 5).
        job = dataclasses.replace(job, watermark=max(now, current.watermark or now))
        _require_a_run(job)
        if job.state is JobState.COMPLETED:
            job = dataclasses.replace(job, state=JobState.ACTIVE)
        return dataclasses.replace(job, next_run_at=self._next_run(job, now))

    @staticmethod
    def _next_run(job: Job, now: datetime) -> datetime | None:
        if job.state is not JobState.ACTIVE:
            return None
        return _first_run(job.spec, after=max(now, job.watermark or now))

    @staticmethod
    async def _require(jobs: JobRepository, job_id: str) -> Job:
        job = await jobs.get(job_id, for_update=True)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}", field=["job_id"])
        return job


def _first_run(spec: JobSpec, *, after: datetime) -> datetime | None:
    return schedules.next_run_after(
        spec.schedules, after=after, start_at=spec.start_at, end_at=spec.end_at
    )


def _require_a_run(job: Job) -> None:
    """A job whose schedules can never fire again is refused rather than stored dead."""
    if _first_run(job.spec, after=job.watermark or job.created_at) is None:
        field = "end_at" if job.spec.end_at is not None else "schedules"
        raise InvalidInput("no run of the schedules falls before endAt", field=[field])
