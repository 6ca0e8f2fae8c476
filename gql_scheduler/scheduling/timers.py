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
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

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


class Timers:
    def __init__(self, on_fire: FireCallback) -> None:
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            jobstores={"default": SlicedJobStore()},
            executors={_EXECUTOR: OccurrenceExecutor(on_fire)},
            job_defaults={
                "misfire_grace_time": None,
                "coalesce": False,
                "max_instances": 2**31,
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

    def disarm(self, job_id: str) -> None:
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)

    def armed_ids(self) -> set[str]:
        return {job.id for job in self._scheduler.get_jobs()}

    def next_fire_time(self, job_id: str) -> datetime | None:
        job = self._scheduler.get_job(job_id)
        return None if job is None else job.next_run_time


def _never_called() -> None:
    """APScheduler wants a callable; OccurrenceExecutor never calls it."""
