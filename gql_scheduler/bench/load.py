"""`gql-scheduler bench load`: many cron jobs read from the store and armed as a serving
process starts, beside the same crons added to a bare APScheduler from memory."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from gql_scheduler.app import build_container
from gql_scheduler.bench.common import (
    CLOCK,
    bench_settings,
    insert_jobs,
    noop_job,
    peak_rss_mb,
    run,
)
from gql_scheduler.domain.schedules import CronSchedule
from gql_scheduler.store import migrations


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
        now = CLOCK.now()
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
    for expression in cron_expressions(jobs, CLOCK.now()):
        trigger = CronTrigger.from_crontab(expression, timezone=UTC)
        scheduler.add_job(noop, trigger, misfire_grace_time=None)
    scheduler.start()
    elapsed = time.perf_counter() - started
    scheduler.shutdown(wait=False)
    return LoadReport("bare APScheduler", elapsed, peak_rss_mb())


def run_load(jobs: int) -> str:
    ceiling = run(baseline_load(jobs))
    ours = run(engine_load(jobs))
    return "\n".join(
        [
            f"bench load: {jobs} active cron jobs loaded and armed",
            ours.line(),
            ceiling.line(),
            f"ratio (gql-scheduler / bare APScheduler): {ours.seconds / ceiling.seconds:.2f}"
            " of the time to arm",
        ]
    )
