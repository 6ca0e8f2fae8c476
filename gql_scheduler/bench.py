"""`gql-scheduler bench fire|load`: the engine measured beside a bare APScheduler baseline.

Not a test: numbers depend on the machine. Each run builds a fresh SQLite database in a
temporary folder (the embedded default), so runs are independent and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gql_scheduler.app import Container, build_container
from gql_scheduler.domain.actions import HandlerAction
from gql_scheduler.domain.clock import SystemClock
from gql_scheduler.domain.jobs import Job, JobSpec, JobState
from gql_scheduler.domain.schedules import (
    CronSchedule,
    IntervalSchedule,
    Schedule,
    upcoming_runs,
)
from gql_scheduler.settings import Settings
from gql_scheduler.store import migrations
from gql_scheduler.store.jobs import JobRepository
from gql_scheduler.store.tables import executions

T = TypeVar("T")
_CLOCK = SystemClock()

# Runs in the first moments measure start-up, not the steady state.
WARM_UP_SECONDS = 2.0
# "Sustained" is judged per window: a p99 that creeps up as the database grows shows here.
WINDOW_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class FireReport:
    name: str
    runs: int
    seconds: float
    drifts_ms: list[float]
    peak_rss_mb: float
    # The p99 drift of each WINDOW_SECONDS of scheduled times, in order.
    window_p99s_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.runs / self.seconds

    def percentile(self, fraction: float) -> float:
        return percentile(self.drifts_ms, fraction)

    def line(self) -> str:
        worst = max(self.drifts_ms, default=float("nan"))
        worst_window = max(self.window_p99s_ms, default=float("nan"))
        return (
            f"{self.name:<22} {self.per_second:>10.0f}/s  drift p50 {self.percentile(0.5):7.1f} ms"
            f"  p99 {self.percentile(0.99):7.1f} ms  max {worst:7.1f} ms"
            f"  worst {WINDOW_SECONDS:g} s p99 {worst_window:7.1f} ms"
            f"  peak RSS {self.peak_rss_mb:6.0f} MB"
        )


def window_p99s(samples: Sequence[tuple[datetime, float]], start: datetime) -> list[float]:
    """The p99 drift of each WINDOW_SECONDS of (scheduled time, drift ms) samples."""
    windows: dict[int, list[float]] = {}
    for scheduled, drift in samples:
        index = int((scheduled - start).total_seconds() // WINDOW_SECONDS)
        windows.setdefault(index, []).append(drift)
    return [percentile(windows[index], 0.99) for index in sorted(windows)]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_settings(folder: Path, **overrides: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        instance_name="bench",
        **overrides,  # type: ignore[arg-type]
    )


def noop_job(name: str, schedule: Schedule, now: datetime) -> Job:
    spec = JobSpec(name=name, schedules=(schedule,), action=HandlerAction("noop"))
    (first,) = upcoming_runs(spec.schedules, after=now, count=1)
    return Job(
        id=str(uuid.uuid4()),
        spec=spec,
        state=JobState.ACTIVE,
        created_at=now,
        updated_at=now,
        watermark=now,
        next_run_at=first,
    )


async def insert_jobs(container: Container, jobs: Sequence[Job]) -> None:
    for start in range(0, len(jobs), 5000):
        async with container.database.write() as connection:
            await JobRepository(connection).insert_many(jobs[start : start + 5000])


def spread_interval_jobs(count: int, every: float, now: datetime) -> list[Job]:
    """`count` jobs every `every` seconds, their anchors spread evenly over one period."""
    return [
        noop_job(
            f"bench-{index}",
            IntervalSchedule(every, now + timedelta(seconds=every * (1 + index / count))),
            now,
        )
        for index in range(count)
    ]


async def engine_fire(jobs: int, seconds: float, every: float) -> FireReport:
    with tempfile.TemporaryDirectory() as folder:
        settings = bench_settings(Path(folder), max_concurrent_executions=10_000)
        await asyncio.to_thread(migrations.upgrade, settings.database_url)
        container = build_container(settings)
        now = _CLOCK.now()
        await insert_jobs(container, spread_interval_jobs(jobs, every, now))
        await container.start(freeze_heap=True)  # the whole service but HTTP, as served
        await asyncio.sleep(seconds + every)
        await container.engine.stop()  # in-flight runs finish and are recorded
        window_start = now + timedelta(seconds=every + WARM_UP_SECONDS)
        window_end = now + timedelta(seconds=every + seconds)
        samples = await _recorded_drifts(container, window_start, window_end)
        await container.aclose()
    return _report("gql-scheduler (SQLite)", samples, window_start, window_end)


def _report(
    name: str, samples: list[tuple[datetime, float]], start: datetime, end: datetime
) -> FireReport:
    drifts = [drift for _, drift in samples]
    measured = (end - start).total_seconds()
    windows = window_p99s(samples, start)
    return FireReport(name, len(drifts), measured, drifts, peak_rss_mb(), windows)


async def _recorded_drifts(
    container: Container, start: datetime, end: datetime
) -> list[tuple[datetime, float]]:
    async with container.database.read() as connection:
        rows = await connection.execute(
            sa.select(executions.c.scheduled_for, executions.c.started_at).where(
                executions.c.status == "SUCCEEDED",
                executions.c.scheduled_for >= start,
                executions.c.scheduled_for < end,
            )
        )
        return [
            (scheduled, (started - scheduled).total_seconds() * 1000) for scheduled, started in rows
        ]


async def baseline_fire(jobs: int, seconds: float, every: float) -> FireReport:
    """The ceiling: the same timers in a bare AsyncIOScheduler, no store at all."""
    samples: list[tuple[datetime, float]] = []
    now = _CLOCK.now()
    window_start = now + timedelta(seconds=every + WARM_UP_SECONDS)
    window_end = now + timedelta(seconds=every + seconds)

    def record(event: JobExecutionEvent) -> None:
        if window_start <= event.scheduled_run_time < window_end:
            drift = (_CLOCK.now() - event.scheduled_run_time).total_seconds() * 1000
            samples.append((event.scheduled_run_time, drift))

    async def noop() -> None:
        return None

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_listener(record, EVENT_JOB_EXECUTED)
    for index in range(jobs):
        start = now + timedelta(seconds=every * (1 + index / jobs))
        scheduler.add_job(
            noop,
            IntervalTrigger(seconds=every, start_date=start),
            misfire_grace_time=None,
            coalesce=False,
        )
    scheduler.start()
    await asyncio.sleep(seconds + every)
    scheduler.pause()
    await asyncio.sleep(0.1)  # runs already started end, rather than being cancelled
    scheduler.shutdown(wait=False)
    return _report("bare APScheduler", samples, window_start, window_end)


@dataclass(frozen=True, slots=True)
class LoadReport:
    name: str
    seconds: float
    peak_rss_mb: float
    # One pass of the reconcile loop over every job, and the event loop's longest wait
    # for a turn meanwhile (what timers and API requests would wait).
    reconcile_ms: float | None = None
    longest_stall_ms: float | None = None

    def line(self) -> str:
        text = (
            f"{self.name:<22} armed in {self.seconds:6.2f} s  peak RSS {self.peak_rss_mb:5.0f} MB"
        )
        if self.reconcile_ms is not None and self.longest_stall_ms is not None:
            text += (
                f"  reconcile pass {self.reconcile_ms:5.0f} ms"
                f" (longest event-loop stall {self.longest_stall_ms:4.0f} ms)"
            )
        return text


def cron_expressions(jobs: int, now: datetime) -> list[str]:
    """Daily crons spread over the minutes and 20 of the hours: none in this hour or the
    next, so nothing fires while measuring."""
    hours = [(now.hour + 2 + offset) % 24 for offset in range(20)]
    return [f"{index % 60} {hours[index % len(hours)]} * * *" for index in range(jobs)]


async def engine_load(jobs: int) -> LoadReport:
    """Load and arm `jobs` active cron jobs from the store, as a serving process starts."""
    with tempfile.TemporaryDirectory() as folder:
        settings = bench_settings(Path(folder))
        await asyncio.to_thread(migrations.upgrade, settings.database_url)
        container = build_container(settings)
        now = _CLOCK.now()
        await insert_jobs(
            container,
            [
                noop_job(f"cron-{i}", CronSchedule(e), now)
                for i, e in enumerate(cron_expressions(jobs, now))
            ],
        )
        started = time.perf_counter()
        await container.start(freeze_heap=True)
        elapsed = time.perf_counter() - started
        armed = len(container.engine.timers.armed_ids())
        reconcile_ms, stall_ms = await timed_with_stalls(container.engine.reconcile)
        await container.aclose()
    if armed != jobs:
        raise RuntimeError(f"armed {armed} of {jobs} jobs")
    return LoadReport("gql-scheduler (SQLite)", elapsed, peak_rss_mb(), reconcile_ms, stall_ms)


async def timed_with_stalls(work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """Milliseconds `work` took, and the longest the event loop went without a turn."""
    longest = 0.0

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    ticking.cancel()
    await asyncio.gather(ticking, return_exceptions=True)
    return elapsed * 1000, longest * 1000


async def baseline_load(jobs: int) -> LoadReport:
    """The ceiling: the same crons added to a bare AsyncIOScheduler, from memory."""

    async def noop() -> None:
        return None

    started = time.perf_counter()
    scheduler = AsyncIOScheduler(timezone=UTC)
    for expression in cron_expressions(jobs, _CLOCK.now()):
        trigger = CronTrigger.from_crontab(expression, timezone=UTC)
        scheduler.add_job(noop, trigger, misfire_grace_time=None)
    scheduler.start()
    elapsed = time.perf_counter() - started
    scheduler.shutdown(wait=False)
    return LoadReport("bare APScheduler", elapsed, peak_rss_mb())


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """On asyncio's own loop, as `gql-scheduler serve` runs (uvicorn is told so)."""
    return asyncio.run(coroutine)


def run_fire(jobs: int, seconds: float, every: float) -> str:
    # The baseline first: peak RSS only grows, so each figure is then its own peak.
    ceiling = _run(baseline_fire(jobs, seconds, every))
    ours = _run(engine_fire(jobs, seconds, every))
    ratio = ours.per_second / ceiling.per_second if ceiling.per_second else float("nan")
    return "\n".join(
        [
            f"bench fire: {jobs} noop jobs every {every:g} s for {seconds:g} s "
            f"(first {WARM_UP_SECONDS:g} s not counted)",
            ours.line(),
            ceiling.line(),
            f"ratio (gql-scheduler / bare APScheduler): {ratio:.2f} of the executions/s, "
            f"p99 drift {ours.percentile(0.99):.1f} vs {ceiling.percentile(0.99):.1f} ms",
        ]
    )


def run_load(jobs: int) -> str:
    ceiling = _run(baseline_load(jobs))
    ours = _run(engine_load(jobs))
    return "\n".join(
        [
            f"bench load: {jobs} active cron jobs loaded and armed",
            ours.line(),
            ceiling.line(),
            f"ratio (gql-scheduler / bare APScheduler): {ours.seconds / ceiling.seconds:.2f}"
            " of the time to arm",
        ]
    )
