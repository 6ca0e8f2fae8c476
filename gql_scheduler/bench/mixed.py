"""`gql-scheduler bench mixed`: jobs firing while API clients send mutations and queries,
beside the same firing with no API load, in the same run, on SQLite and on PostgreSQL.

Not a test: numbers depend on the machine. Each run has a fresh database (a temporary
SQLite file; a PostgreSQL database made for it and dropped after, on the server of
GQL_SCHEDULER_BENCH_POSTGRES_URL, by default the local one). The service is served by
uvicorn in this process; the clients run in a second one (bench/api_clients.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import sqlalchemy as sa

from gql_scheduler.app import Container, create_app, uvicorn_options
from gql_scheduler.bench.common import (
    CLOCK,
    insert_jobs,
    noop_job,
    percentile,
    service_settings,
)
from gql_scheduler.bench.databases import postgres_server, scratch_database
from gql_scheduler.bench.serving import LOCALHOST, serving
from gql_scheduler.domain.schedules import IntervalSchedule
from gql_scheduler.store import migrations
from gql_scheduler.store.tables import executions

EVERY = 1.0
LEAD_SECONDS = 5.0  # from the jobs' insertion to their first run: start-up and the clients'
WARM_UP_SECONDS = 2.0
CLIENT_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Firing:
    runs: int
    seconds: float
    drifts_ms: list[float]
    skipped: int
    missed: int

    def line(self) -> str:
        p50, p99 = percentile(self.drifts_ms, 0.5), percentile(self.drifts_ms, 0.99)
        return (
            f"{self.runs / self.seconds:6.0f} runs/s  drift p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
            f"  SKIPPED {self.skipped}  MISSED {self.missed}"
        )


@dataclass(frozen=True, slots=True)
class ApiLoad:
    samples: list[tuple[str, float, bool]]
    seconds: float

    def line(self, kinds: tuple[str, ...], name: str) -> str:
        times = [s * 1000 for kind, s, ok in self.samples if kind in kinds and ok]
        failed = sum(1 for kind, _, ok in self.samples if kind in kinds and not ok)
        return (
            f"{name} {len(times) / self.seconds:6.1f}/s  p50 {percentile(times, 0.5):7.1f} ms"
            f"  p99 {percentile(times, 0.99):7.1f} ms  failed {failed}"
        )


async def firing_run(
    database_url: str, jobs: int, seconds: float, clients: int, folder: Path
) -> tuple[Firing, ApiLoad | None]:
    settings = service_settings(database_url, max_concurrent_executions=10_000)
    await asyncio.to_thread(migrations.upgrade, database_url)
    app = create_app(settings, apply_migrations=False)
    container: Container = app.state.container
    now = CLOCK.now()
    first = now + timedelta(seconds=LEAD_SECONDS)
    firing = [
        noop_job(f"fire-{i}", IntervalSchedule(EVERY, first + timedelta(seconds=i / jobs)), now)
        for i in range(jobs)
    ]
    await insert_jobs(container, firing)
    load = None
    async with serving(app, lifespan="on", **uvicorn_options(settings)) as port:
        if clients:
            load = await _with_clients(
                f"http://{LOCALHOST}:{port}", clients, seconds, first, folder
            )
        else:
            await asyncio.sleep((first - CLOCK.now()).total_seconds() + seconds)
        await asyncio.sleep(EVERY)  # the last runs end
        window = (first + timedelta(seconds=WARM_UP_SECONDS), first + timedelta(seconds=seconds))
        result = await _firing(container, {job.id for job in firing}, window)
    return result, load


async def _with_clients(
    url: str, clients: int, seconds: float, start: datetime, folder: Path
) -> ApiLoad:
    output = folder / f"clients-{uuid.uuid4().hex}.json"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gql_scheduler.bench.api_clients",
        url,
        str(clients),
        str(seconds),
        str(output),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        async with asyncio.timeout(CLIENT_TIMEOUT):
            if (await child.stdout.readline()).strip() != b"ready":
                raise RuntimeError("the API clients did not start")
            await asyncio.sleep(max(0.0, (start - CLOCK.now()).total_seconds()))
            child.stdin.write(b"go\n")
            await child.stdin.drain()
            await child.wait()
        found = json.loads(await asyncio.to_thread(output.read_text, "utf-8"))
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    return ApiLoad([(kind, took, ok) for kind, took, ok in found["samples"]], seconds)


async def _firing(
    container: Container, job_ids: set[str], window: tuple[datetime, datetime]
) -> Firing:
    async with container.database.read() as connection:
        rows = (
            await connection.execute(
                sa.select(
                    executions.c.job_id,
                    executions.c.status,
                    executions.c.scheduled_for,
                    executions.c.started_at,
                ).where(
                    executions.c.scheduled_for >= window[0],
                    executions.c.scheduled_for < window[1],
                    executions.c.trigger.in_(("SCHEDULE", "CATCH_UP")),
                )
            )
        ).all()
    ours = [row for row in rows if row.job_id in job_ids]
    drifts = [
        (row.started_at - row.scheduled_for).total_seconds() * 1000
        for row in ours
        if row.status == "SUCCEEDED"
    ]
    return Firing(
        runs=len(drifts),
        seconds=(window[1] - window[0]).total_seconds(),
        drifts_ms=drifts,
        skipped=sum(1 for row in ours if row.status == "SKIPPED"),
        missed=sum(1 for row in ours if row.status == "MISSED"),
    )


async def backend_pair(
    backend: str, jobs: int, seconds: float, clients: int
) -> tuple[Firing, Firing, ApiLoad | None]:
    """The quiet run, then the loaded one, each on a fresh database."""
    results = []
    for load in (0, clients):
        with tempfile.TemporaryDirectory() as folder:
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
                results.append(await firing_run(url, jobs, seconds, load, Path(folder)))
            else:
                async with scratch_database(postgres_server()) as url:
                    results.append(await firing_run(url, jobs, seconds, load, Path(folder)))
    (quiet, _), (loaded, api) = results
    return quiet, loaded, api


def report(name: str, quiet: Firing, loaded: Firing, api: ApiLoad | None) -> list[str]:
    ratio = percentile(loaded.drifts_ms, 0.99) / percentile(quiet.drifts_ms, 0.99)
    lost = loaded.skipped + loaded.missed - quiet.skipped - quiet.missed
    lines = [f"{name:<11} quiet   {quiet.line()}", f"{name:<11} loaded  {loaded.line()}"]
    if api is not None:
        lines.append(
            f"{name:<11} API     " + api.line(("create", "update", "trigger"), "mutations")
        )
        lines.append(f"{name:<11} API     " + api.line(("job", "page"), "queries  "))
    lines.append(
        f"{name:<11} ratio   drift p99 loaded / quiet {ratio:.2f}x (target <= 2)"
        f", occurrences lost to load {max(lost, 0)} (target 0)"
    )
    return lines


def run_mixed(jobs: int, clients: int, seconds: float, backends: list[str]) -> str:
    lines = [
        f"bench mixed: {jobs} noop jobs every {EVERY:g} s ({jobs / EVERY:g}/s) for {seconds:g} s"
        f" (first {WARM_UP_SECONDS:g} s not counted), {clients} API clients"
        " (half mutations, half queries), beside the same firing with no API load"
    ]
    for backend in backends:
        name = "SQLite" if backend == "sqlite" else "PostgreSQL"
        try:
            quiet, loaded, api = asyncio.run(backend_pair(backend, jobs, seconds, clients))
        except (OSError, asyncpg.PostgresError) as error:
            lines.append(f"{name:<11} not run: {type(error).__name__}: {error}")
            continue
        lines.extend(report(name, quiet, loaded, api))
    return "\n".join(lines)
