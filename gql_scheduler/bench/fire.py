"""`gql-scheduler bench fire`: executions/s and drift through the whole path, beside a bare
APScheduler running the same timers with no store."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from gql_scheduler.app import Container, build_container
from gql_scheduler.bench.common import (
    CLOCK,
    bench_settings,
    insert_jobs,
    noop_job,
    peak_rss_mb,
    percentile,
    run,
)
from gql_scheduler.domain.jobs import Job
from gql_scheduler.domain.schedules import IntervalSchedule
from gql_scheduler.store import migrations
from gql_scheduler.store.tables import executions

# Runs in the first moments measure start-up, not the steady state (a third of a short run).
WARM_UP_SECONDS = 2.0


def warm_up(seconds: float) -> float:
    return min(WARM_UP_SECONDS, seconds / 3)


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
        now = CLOCK.now()
        await insert_jobs(container, spread_interval_jobs(jobs, every, now))
        await container.start(freeze_heap=True)  # the whole service but HTTP, as served
        await asyncio.sleep(seconds + every)
        await container.engine.stop()  # in-flight runs finish and are recorded
        window_start = now + timedelta(seconds=every + warm_up(seconds))
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
    now = CLOCK.now()
    window_start = now + timedelta(seconds=every + warm_up(seconds))
    window_end = now + timedelta(seconds=every + seconds)

    def record(event: JobExecutionEvent) -> None:
        if window_start <= event.scheduled_run_time < window_end:
            drift = (CLOCK.now() - event.scheduled_run_time).total_seconds() * 1000
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


def run_fire(jobs: int, seconds: float, every: float) -> str:
    # The baseline first: peak RSS only grows, so each figure is then its own peak.
    ceiling = run(baseline_fire(jobs, seconds, every))
    ours = run(engine_fire(jobs, seconds, every))
    ratio = ours.per_second / ceiling.per_second if ceiling.per_second else float("nan")
    return "\n".join(
        [
            f"bench fire: {jobs} noop jobs every {every:g} s for {seconds:g} s "
            f"(first {warm_up(seconds):g} s not counted)",
            ours.line(),
            ceiling.line(),
            f"ratio (gql-scheduler / bare APScheduler): {ratio:.2f} of the executions/s, "
            f"p99 drift {ours.percentile(0.99):.1f} vs {ceiling.percentile(0.99):.1f} ms",
        ]
    )
