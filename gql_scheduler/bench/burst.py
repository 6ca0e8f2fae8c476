"""`gql-scheduler bench burst`: N jobs all due in the same second (as thousands of crons on
`0 * * * *` are), on SQLite or PostgreSQL, beside a bare APScheduler clearing the same
burst with no store.

It prints the time to clear the burst (due time to the last start), the drift distribution,
whether every job ran exactly once, and the latency of `{ __typename }` sent by a probe in
another process throughout the burst, against the same probe before it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from gql_scheduler.app import Container, create_app, uvicorn_options
from gql_scheduler.bench.common import (
    CLOCK,
    insert_jobs,
    noop_job,
    percentile,
    service_settings,
)
from gql_scheduler.bench.databases import scratch_database
from gql_scheduler.bench.serving import LOCALHOST, serving
from gql_scheduler.domain.schedules import IntervalSchedule
from gql_scheduler.store import migrations
from gql_scheduler.store.tables import executions

LEAD_SECONDS = 4.0  # from the jobs' insertion to the burst: the server and probe start
QUIET_SECONDS = 1.5  # the probe's answers before the burst: its own baseline
CLEAR_TIMEOUT = 300.0
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Burst:
    name: str
    jobs: int
    drifts_ms: list[float]
    ran_once: bool

    def line(self) -> str:
        cleared = max(self.drifts_ms, default=float("nan")) / 1000
        return (
            f"{self.name:<26} cleared in {cleared:6.2f} s ({len(self.drifts_ms) / cleared:6.0f}/s)"
            f"  drift p50 {percentile(self.drifts_ms, 0.5):7.0f} ms"
            f"  p99 {percentile(self.drifts_ms, 0.99):7.0f} ms"
            f"  every job exactly once: {'yes' if self.ran_once else 'NO'}"
        )


Probed = list[tuple[float, float | None]]  # (sent, Unix time; latency, None if it failed)


async def engine_burst(server: str | None, jobs: int) -> tuple[Burst, Probed, datetime]:
    """The service, served; returns the burst, the probe's answers and the burst's time."""
    async with scratch_database(server) as url:
        settings = service_settings(url, max_concurrent_executions=10_000)
        await asyncio.to_thread(migrations.upgrade, url)
        app = create_app(settings, apply_migrations=False)
        container: Container = app.state.container
        now = CLOCK.now()
        due = (now + timedelta(seconds=LEAD_SECONDS)).replace(microsecond=0)
        burst = [noop_job(f"burst-{i}", IntervalSchedule(HOUR, due), now) for i in range(jobs)]
        await insert_jobs(container, burst)
        async with serving(app, lifespan="on", **uvicorn_options(settings)) as port:
            with tempfile.TemporaryDirectory() as folder:
                output = Path(folder) / "probe.json"
                probed = _probe(f"http://{LOCALHOST}:{port}", due, output)
                cleared = _cleared(container, jobs, due, output)
                latencies, drifts = await asyncio.gather(probed, cleared)
        name = "gql-scheduler (PostgreSQL)" if server else "gql-scheduler (SQLite)"
        ran_once = await _ran_once(container, {job.id for job in burst}, due)
    return Burst(name, jobs, drifts, ran_once), latencies, due


async def _cleared(
    container: Container, jobs: int, due: datetime, probe_output: Path
) -> list[float]:
    """Waits (bounded) until every run of the burst has started, then stops the probe;
    their drifts (ms)."""
    query = sa.select(executions.c.started_at).where(
        executions.c.scheduled_for == due, executions.c.started_at.is_not(None)
    )
    async with asyncio.timeout(CLEAR_TIMEOUT):
        while True:
            await asyncio.sleep(0.5)
            async with container.database.read() as connection:
                started = list((await connection.scalars(query)).all())
            if len(started) >= jobs:
                stop = probe_output.with_name(probe_output.name + ".stop")
                await asyncio.to_thread(stop.touch)
                return [(at - due).total_seconds() * 1000 for at in started]


async def _ran_once(container: Container, job_ids: set[str], due: datetime) -> bool:
    query = sa.select(executions.c.job_id, executions.c.status).where(
        executions.c.scheduled_for == due
    )
    async with container.database.read() as connection:
        rows = (await connection.execute(query)).all()
    runs = Counter(row.job_id for row in rows if row.status in ("RUNNING", "SUCCEEDED"))
    return set(runs) == job_ids and set(runs.values()) == {1} and len(rows) == len(job_ids)


async def _probe(url: str, due: datetime, output: Path) -> Probed:
    """`{ __typename }` from another process, from QUIET_SECONDS before the burst until it
    is cleared."""
    seconds = QUIET_SECONDS + CLEAR_TIMEOUT
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gql_scheduler.bench.probe", url, str(seconds), str(output),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        async with asyncio.timeout(seconds + 60):
            if (await child.stdout.readline()).strip() != b"ready":
                raise RuntimeError("the probe did not start")
            start = due - timedelta(seconds=QUIET_SECONDS)
            await asyncio.sleep(max(0.0, (start - CLOCK.now()).total_seconds()))
            child.stdin.write(b"go\n")
            await child.stdin.drain()
            await child.wait()
        found = json.loads(await asyncio.to_thread(output.read_text, "utf-8"))
        return [(sent, took) for sent, took in found]
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def baseline_burst(jobs: int) -> Burst:
    """The same burst in a bare AsyncIOScheduler: N date jobs due at the same instant."""
    drifts: list[float] = []
    done = asyncio.Event()

    def record(event: JobExecutionEvent) -> None:
        drifts.append((CLOCK.now() - event.scheduled_run_time).total_seconds() * 1000)
        if len(drifts) >= jobs:
            done.set()

    async def noop() -> None:
        return None

    due = (CLOCK.now() + timedelta(seconds=2)).replace(microsecond=0, tzinfo=UTC)
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_listener(record, EVENT_JOB_EXECUTED)
    for _ in range(jobs):
        scheduler.add_job(noop, DateTrigger(due), misfire_grace_time=None)
    scheduler.start()
    async with asyncio.timeout(CLEAR_TIMEOUT):
        await done.wait()
    scheduler.shutdown(wait=False)
    return Burst("bare APScheduler", jobs, drifts, len(drifts) == jobs)


def _latency_line(name: str, latencies: Probed) -> str:
    answered = [took * 1000 for _, took in latencies if took is not None]
    return (
        f"{name:<26} {{ __typename }} p50 {percentile(answered, 0.5):7.1f} ms"
        f"  p99 {percentile(answered, 0.99):7.1f} ms"
        f"  max {max(answered, default=float('nan')):7.1f} ms"
        f"  failed {len(latencies) - len(answered)}"
    )


def run_burst(jobs: int, server: str | None = None) -> str:
    ceiling = asyncio.run(baseline_burst(jobs))
    ours, latencies, due = asyncio.run(engine_burst(server, jobs))
    cleared_at = due.timestamp() + max(ours.drifts_ms) / 1000
    before = [item for item in latencies if item[0] < due.timestamp()]
    during = [item for item in latencies if due.timestamp() <= item[0] <= cleared_at]
    cleared_ours = max(ours.drifts_ms) / 1000
    cleared_base = max(ceiling.drifts_ms) / 1000
    return "\n".join(
        [
            f"bench burst: {jobs} noop jobs all due in the same second",
            ours.line(),
            ceiling.line(),
            _latency_line("API before the burst", before),
            _latency_line("API during the burst", during),
            f"ratio (gql-scheduler / bare APScheduler): {cleared_ours / cleared_base:.1f}x"
            " the time to clear",
        ]
    )
