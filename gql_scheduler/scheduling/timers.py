"""The APScheduler 3 adapter: one in-memory timer per active job, and nothing else.

APScheduler only decides *when*; the schedule maths is ours (croniter through the domain,
never APScheduler's crontab parser, which numbers weekdays differently). Every due time
reaches `on_fire` with its nominal instant: late runs are never dropped
(misfire_grace_time=None) nor merged (coalesce=False); restart misfires are handled by
the engine from the job's watermark before its timer is armed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job as APSJob
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import datetime_to_utc_timestamp

from gql_scheduler.domain import schedules
from gql_scheduler.domain.jobs import Job

log = logging.getLogger("gql_scheduler.timers")

FireCallback = Callable[[str, datetime], None]
# Due jobs handled per pass of APScheduler's loop: a burst of thousands due in the same
# second is worked through in slices, with the event loop free in between.
DUE_SLICE = 200
# APScheduler's add_job always names an executor ("default" unless told otherwise), so ours
# takes that name: no job can end up on a stock executor that would call the function.
_EXECUTOR = "default"
_MAX_INSTANCES = 2**31
_NEVER_CALLED = "gql_scheduler.scheduling.timers:_never_called"


class OccurrenceTrigger(BaseTrigger):  # type: ignore[misc]
    """The job's schedules, from its watermark on."""

    def __init__(self, job: Job) -> None:
        spec = job.spec
        self.timeline = schedules.Timeline(
            spec.schedules, start_at=spec.start_at, end_at=spec.end_at
        )
        self.not_before = job.watermark or job.created_at

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        return self.timeline.next_after(previous_fire_time or self.not_before)

    def __str__(self) -> str:
        return "occurrences"


class OccurrenceExecutor(BaseExecutor):  # type: ignore[misc]
    """Hands each due time to the engine; the run happens elsewhere, so it is done here."""

    def __init__(self, on_fire: FireCallback) -> None:
        super().__init__()
        self._on_fire = on_fire

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        for run_time in run_times:
            self._on_fire(job.id, run_time.astimezone(UTC))
        self._run_job_success(job.id, [])


class SlicedJobStore(MemoryJobStore):  # type: ignore[misc]
    def get_due_jobs(self, now: datetime) -> list[Any]:
        due: list[Any] = super().get_due_jobs(now)
        return due[:DUE_SLICE]

    def load(self, jobs: list[APSJob]) -> None:
        """Fill the empty store at once, sorted once: adding 100,000 jobs one by one costs
        an insertion into a sorted list each (MemoryJobStore keeps `_jobs` sorted by next
        run time, then id, and `_jobs_index` by id; APScheduler 3 is pinned)."""
        if self.get_all_jobs():
            raise RuntimeError("load() is for an empty store")
        entries = [(job, datetime_to_utc_timestamp(job.next_run_time)) for job in jobs]
        entries.sort(key=lambda entry: (entry[1], entry[0].id))
        self._jobs = entries
        self._jobs_index = {job.id: (job, timestamp) for job, timestamp in entries}


class Timers:
    def __init__(self, on_fire: FireCallback) -> None:
        self._store = SlicedJobStore()
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            jobstores={"default": self._store},
            executors={_EXECUTOR: OccurrenceExecutor(on_fire)},
            job_defaults={
                "misfire_grace_time": None,
                "coalesce": False,
                "max_instances": _MAX_INSTANCES,
            },
        )

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def arm(self, job: Job) -> None:
        """Create or replace the job's timer; a job with no run left gets none."""
        trigger = OccurrenceTrigger(job)
        next_run = trigger.get_next_fire_time(None, trigger.not_before)
        if next_run is None:
            self.disarm(job.id)
            return
        self._scheduler.add_job(
            _never_called,
            trigger=trigger,
            id=job.id,
            name=job.spec.name,
            next_run_time=next_run,
            executor=_EXECUTOR,
            replace_existing=True,
        )

    def arm_all(self, jobs: list[Job]) -> None:
        """Arm many jobs before the timers start (the start-up path), in one sorted load.

        The APScheduler jobs are restored from their pickled form, as a persistent job
        store would, which skips re-validating the same callable 100,000 times.
        """
        if self.running:
            raise RuntimeError("arm_all() is for before start()")
        loaded = []
        for job in jobs:
            trigger = OccurrenceTrigger(job)
            next_run = trigger.get_next_fire_time(None, trigger.not_before)
            if next_run is not None:
                loaded.append(self._restored(job, trigger, next_run))
        self._store.load(loaded)

    def _restored(self, job: Job, trigger: OccurrenceTrigger, next_run: datetime) -> APSJob:
        restored = APSJob.__new__(APSJob)
        restored.__setstate__(
            {
                "version": 1,
                "id": job.id,
                "func": _NEVER_CALLED,
                "trigger": trigger,
                "executor": _EXECUTOR,
                "args": (),
                "kwargs": {},
                "name": job.spec.name,
                "misfire_grace_time": None,
                "coalesce": False,
                "max_instances": _MAX_INSTANCES,
                "next_run_time": next_run,
            }
        )
        restored._scheduler = self._scheduler
        restored._jobstore_alias = "default"
        return restored

    def disarm(self, job_id: str) -> None:
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)

    def armed_ids(self) -> set[str]:
        # Before start, APScheduler lists only the jobs added one by one (still pending).
        armed = self._scheduler.get_jobs() + self._store.get_all_jobs()
        return {job.id for job in armed}


def _never_called() -> None:
    """APScheduler wants a callable; OccurrenceExecutor never calls it."""
