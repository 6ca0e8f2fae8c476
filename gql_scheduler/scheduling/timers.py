"""The APScheduler 3 adapter: one in-memory timer per active job, and nothing else.

APScheduler only decides *when*; the schedule maths is ours (croniter through the domain,
never APScheduler's crontab parser, which numbers weekdays differently). Every due time
reaches `on_fire` with its nominal instant: late runs are never dropped
(misfire_grace_time=None) nor merged (coalesce=False); restart misfires are handled by
the engine from the job's watermark before its timer is armed.

APScheduler's own pass over due jobs (`_process_jobs`) is replaced by a lean one: at 2,000
fires a second its per-job bookkeeping (run-time lists, a bisect in Python and a list
insertion per update, a submission event, executor locks, debug logging) took a quarter of
the event loop. The store hands its due slice over itself, in one pass.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from threading import TIMEOUT_MAX
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job as APSJob
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import datetime_to_utc_timestamp

from gql_scheduler.domain import schedules
from gql_scheduler.domain.clock import SystemClock
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


class UnusedExecutor(BaseExecutor):  # type: ignore[misc]
    """Registered under APScheduler's default name so that it never creates a stock one;
    due times reach `on_fire` through `SlicedJobStore.fire_due`, never an executor."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        raise RuntimeError(f"timer {job.id} was handed to an executor")


class SlicedJobStore(MemoryJobStore):  # type: ignore[misc]
    """MemoryJobStore keeps `_jobs` as (job, timestamp) sorted by timestamp then id, and
    `_jobs_index` by id (APScheduler 3 is pinned); this one also fires its due jobs."""

    def fire_due(self, now: datetime, on_fire: FireCallback) -> None:
        """Hand over every due time of the first DUE_SLICE due jobs, oldest first, each
        with its nominal instant, then put them back in order by their next time (a job
        with none left is removed)."""
        entries = self._jobs
        due_count = bisect.bisect_right(
            entries, datetime_to_utc_timestamp(now), hi=min(len(entries), DUE_SLICE), key=_time
        )
        due = entries[:due_count]
        del entries[:due_count]
        for job, _ in due:
            next_run = _deliver(job, now, on_fire)
            if next_run is None:
                del self._jobs_index[job.id]
                continue
            job.next_run_time = next_run
            entry = (job, datetime_to_utc_timestamp(next_run))
            # A C-level bisect and one list insertion per job (no Python-level search).
            bisect.insort_right(entries, entry, key=_order)
            self._jobs_index[job.id] = entry

    def load(self, jobs: list[APSJob]) -> None:
        """Fill the empty store at once, sorted once: adding 100,000 jobs one by one costs
        an insertion into a sorted list each."""
        if self.get_all_jobs():
            raise RuntimeError("load() is for an empty store")
        entries = [(job, datetime_to_utc_timestamp(job.next_run_time)) for job in jobs]
        entries.sort(key=_order)
        self._jobs = entries
        self._jobs_index = {job.id: (job, timestamp) for job, timestamp in entries}


def _time(entry: tuple[APSJob, float | None]) -> float:
    # A paused APScheduler job has no timestamp and sorts last (ours are never paused).
    timestamp = entry[1]
    return math.inf if timestamp is None else timestamp


def _order(entry: tuple[APSJob, float | None]) -> tuple[float, str]:
    return _time(entry), entry[0].id


def _deliver(job: APSJob, now: datetime, on_fire: FireCallback) -> datetime | None:
    """Every due time of the job, in order (none dropped nor merged); its next one."""
    run_time: datetime | None = job.next_run_time
    while run_time is not None and run_time <= now:
        try:
            on_fire(job.id, run_time.astimezone(UTC))
        except Exception:
            # As APScheduler does when a submission fails: log it and move the timer on.
            log.exception("handing over a due time failed", extra={"job_id": job.id})
        run_time = job.trigger.get_next_fire_time(run_time, now)
    return run_time


class LeanScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """An AsyncIOScheduler whose pass over due jobs is `SlicedJobStore.fire_due`. A burst
    is still worked through DUE_SLICE jobs per pass, the loop free between passes."""

    def __init__(
        self,
        store: SlicedJobStore,
        on_fire: FireCallback,
        now: Callable[[], datetime],
        **options: Any,
    ) -> None:
        super().__init__(jobstores={"default": store}, **options)
        self._store = store
        self._on_fire = on_fire
        self._now = now  # the engine's clock (invariant 6), not APScheduler's own reading

    def _process_jobs(self) -> float | None:
        if self.state == STATE_PAUSED:
            return None
        with self._jobstores_lock:
            now = self._now()
            self._store.fire_due(now, self._on_fire)
            next_run: datetime | None = self._store.get_next_run_time()
        if next_run is None:
            return None
        # The rest of a burst is due already: 0, the next pass after the loop had its turn.
        return min(max((next_run - now).total_seconds(), 0.0), TIMEOUT_MAX)

    def _start_timer(self, wait_seconds: float | None) -> None:
        # AsyncIOScheduler's timer calls `wakeup`, which is thread-safe: it goes through
        # call_soon_threadsafe, a write to the loop's self-pipe and one more loop pass for
        # every wake-up. The timer already runs on the loop, so it processes jobs directly.
        self._stop_timer()
        if wait_seconds is not None:
            self._timeout = self._eventloop.call_later(wait_seconds, self._wake_on_loop)

    def _wake_on_loop(self) -> None:
        self._stop_timer()
        self._start_timer(self._process_jobs())


class Timers:
    def __init__(self, on_fire: FireCallback, now: Callable[[], datetime] | None = None) -> None:
        self._store = SlicedJobStore()
        self._scheduler = LeanScheduler(
            self._store,
            on_fire,
            now or SystemClock().now,
            timezone=UTC,
            executors={_EXECUTOR: UnusedExecutor()},
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
