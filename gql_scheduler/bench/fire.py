"""`gql-scheduler bench fire`: executions/s and drift through the whole path, beside a bare
APScheduler running the same timers with no store, on SQLite or on PostgreSQL.

Each side also reports its CPU time (this process: the service runs in it, as served but
for HTTP) per execution, and the service's per event written: what a run costs, apart from
how fast the machine is today.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from gql_scheduler.app import Container, build_container
from gql_scheduler.bench.common import (
    CLOCK,
    insert_jobs,
    noop_job,
    peak_rss_mb,
    percentile,
    run,
    service_settings,
)
from gql_scheduler.bench.databases import is_postgres, postgres_deadlocks, scratch_database
from gql_scheduler.domain.jobs import Job
from gql_scheduler.domain.schedules import IntervalSchedule
from gql_scheduler.store import migrations
from gql_scheduler.store.tables import events, executions

# Runs in the first moments measure start-up, not the steady state (a third of a short run).
WARM_UP_SECONDS = 2.0


def warm_up(seconds: float) -> float:
    return min(WARM_UP_SECONDS, seconds / 3)


# "Sustained" is judged per window: a p99 that creeps up as the database grows shows here.
WINDOW_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Cost:
    """CPU seconds this process spent over the whole firing, and what it did for them."""

    cpu_seconds: float
    executions: int
    events: int

    def per_execution_us(self) -> float:
        return self.cpu_seconds / self.executions * 1e6 if self.executions else float("nan")

    def per_event_us(self) -> float:
        return self.cpu_seconds / self.events * 1e6 if self.events else float("nan")


@dataclass(frozen=True, slots=True)
class FireReport:
    name: str
    runs: int
    seconds: float
    drifts_ms: list[float]
    peak_rss_mb: float
    # The p99 drift of each WINDOW_SECONDS of scheduled times, in order.
    window_p99s_ms: list[float]
    cost: Cost = field(default_factory=lambda: Cost(0.0, 0, 0))
    skipped: int = 0
    missed: int = 0
    deadlocks: int | None = None  # PostgreSQL only
    # Executions started within the window, whenever they were due: past capacity this is
    # the capacity (the runs due in the window are then partly still owed when it ends).
    started: int | None = None

    @property
    def per_second(self) -> float:
        return self.runs / self.seconds

    def percentile(self, fraction: float) -> float:
        return percentile(self.drifts_ms, fraction)

    def line(self) -> str:
        worst = max(self.drifts_ms, default=float("nan"))
        worst_window = max(self.window_p99s_ms, default=float("nan"))
        return (
            f"{self.name:<26} {self.per_second:>7.0f}/s  drift p50 {self.percentile(0.5):7.1f} ms"
            f"  p99 {self.percentile(0.99):7.1f} ms  max {worst:7.1f} ms"
            f"  worst {WINDOW_SECONDS:g} s p99 {worst_window:7.1f} ms"
            f"  peak RSS {self.peak_rss_mb:6.0f} MB"
        )

    def cost_line(self) -> str:
        line = f"{self.name:<26} CPU {self.cost.per_execution_us():7.0f} us per execution"
        if self.started is not None:
            line = f"{self.name:<26} {self.started / self.seconds:>7.0f}/s started" + line[26:]
        if self.cost.events:
            line += f", {self.cost.per_event_us():5.0f} us per event written"
        line += f"  SKIPPED {self.skipped}  MISSED {self.missed}"
        if self.deadlocks is not None:
            line += f"  deadlocks {self.deadlocks}"
        return line


def cpu_seconds() -> float:
    """User and system time of this process, all its threads (the SQLite driver's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


async def engine_fire(server: str | None, jobs: int, seconds: float, every: float) -> FireReport:
    """The service's engine on a scratch database (`server`: None for SQLite, else a
    PostgreSQL server to make one on)."""
    async with scratch_database(server) as url:
        settings = service_settings(url, max_concurrent_executions=10_000)
        await asyncio.to_thread(migrations.upgrade, url)
        container = build_container(settings)
        now = CLOCK.now()
        await insert_jobs(container, spread_interval_jobs(jobs, every, now))
        cpu_before = cpu_seconds()
        await container.start(freeze_heap=True)  # the whole service but HTTP, as served
        await asyncio.sleep(seconds + every)
        await container.engine.stop()  # in-flight runs finish and are recorded
        cpu = cpu_seconds() - cpu_before
        window = (
            now + timedelta(seconds=every + warm_up(seconds)),
            now + timedelta(seconds=every + seconds),
        )
        samples = await _recorded_drifts(container, *window)
        totals = await _totals(container, *window)
        await container.aclose()
        deadlocks = await postgres_deadlocks(url) if is_postgres(url) else None
    name = "gql-scheduler (PostgreSQL)" if deadlocks is not None else "gql-scheduler (SQLite)"
    report = _report(name, samples, *window)
    return dataclasses.replace(
        report,
        cost=Cost(cpu, totals["executions"], totals["events"]),
        skipped=totals["skipped"],
        missed=totals["missed"],
        deadlocks=deadlocks,
        started=totals["started"],
    )


async def _totals(container: Container, start: datetime, end: datetime) -> dict[str, int]:
    """Over the whole firing: executions run, SKIPPED and MISSED, and events written; and
    the executions that started between `start` and `end` (whenever they were due)."""
    status, started_at = executions.c.status, executions.c.started_at
    counted = sa.select(
        sa.func.count().filter(status == "SUCCEEDED").label("executions"),
        sa.func.count().filter(started_at >= start, started_at < end).label("started"),
        sa.func.count().filter(status == "SKIPPED").label("skipped"),
        sa.func.count().filter(status == "MISSED").label("missed"),
    )
    async with container.database.read() as connection:
        row = (await connection.execute(counted)).one()
        written = await connection.scalar(sa.select(sa.func.count()).select_from(events))
    return {**row._asdict(), "events": int(written or 0)}


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
    fired = 0

    def count(_event: JobExecutionEvent) -> None:
        nonlocal fired
        fired += 1

    scheduler.add_listener(count, EVENT_JOB_EXECUTED)
    cpu_before = cpu_seconds()
    scheduler.start()
    await asyncio.sleep(seconds + every)
    scheduler.pause()
    await asyncio.sleep(0.1)  # runs already started end, rather than being cancelled
    scheduler.shutdown(wait=False)
    cost = Cost(cpu_seconds() - cpu_before, fired, 0)
    report = _report("bare APScheduler", samples, window_start, window_end)
    return dataclasses.replace(report, cost=cost)


def run_fire(jobs: int, seconds: float, every: float, server: str | None = None) -> str:
    # The baseline first: peak RSS only grows, so each figure is then its own peak.
    ceiling = run(baseline_fire(jobs, seconds, every))
    ours = run(engine_fire(server, jobs, seconds, every))
    ratio = ours.per_second / ceiling.per_second if ceiling.per_second else float("nan")
    cpu_ratio = ours.cost.per_execution_us() / ceiling.cost.per_execution_us()
    return "\n".join(
        [
            f"bench fire: {jobs} noop jobs every {every:g} s for {seconds:g} s "
            f"(first {warm_up(seconds):g} s not counted)",
            ours.line(),
            ceiling.line(),
            ours.cost_line(),
            ceiling.cost_line(),
            f"ratio (gql-scheduler / bare APScheduler): {ratio:.2f} of the executions/s, "
            f"p99 drift {ours.percentile(0.99):.1f} vs {ceiling.percentile(0.99):.1f} ms, "
            f"CPU per execution {cpu_ratio:.1f}x",
        ]
    )
