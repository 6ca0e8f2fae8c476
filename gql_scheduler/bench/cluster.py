"""`gql-scheduler bench cluster`: N `serve` processes on one PostgreSQL database, each
firing every-second jobs, beside one instance alone in the same run.

Each instance count gets a scratch database of its own (bench/databases.py) with the same
noop jobs. The processes are real `gql-scheduler serve` processes on 127.0.0.1, started
together and stopped with SIGTERM. Per count it prints executions/s, drift, SKIPPED and
MISSED, duplicates (occurrences run more than once: must be 0), PostgreSQL's deadlock count
for the database, the runs each instance took, and the CPU each instance and the database
server spent per execution: from those, what N instances on N machines can be expected to
give (the database server's CPU is then the shared cost).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from gql_scheduler.app import Container, build_container
from gql_scheduler.bench.common import CLOCK, insert_jobs, percentile, service_settings
from gql_scheduler.bench.databases import (
    postgres_deadlocks,
    postgres_server,
    scratch_database,
)
from gql_scheduler.bench.fire import spread_interval_jobs
from gql_scheduler.store import migrations
from gql_scheduler.store.tables import executions

LEAD_SECONDS = 10.0  # from the jobs' insertion to their first run: the processes start
WARM_UP_SECONDS = 3.0
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ClusterRun:
    instances: int
    seconds: float
    drifts_ms: list[float]
    skipped: int
    missed: int
    duplicates: int
    deadlocks: int
    runs_by_instance: dict[str, int]
    cpu_by_instance: dict[str, float]
    database_cpu: float

    def lines(self) -> list[str]:
        runs = len(self.drifts_ms)
        p50, p99 = percentile(self.drifts_ms, 0.5), percentile(self.drifts_ms, 0.99)
        executed = sum(self.runs_by_instance.values()) or 1
        per_run = sum(self.cpu_by_instance.values()) / executed * 1e6
        head = (
            f"{self.instances} instance{'s' if self.instances > 1 else ' '}"
            f"  {runs / self.seconds:6.0f} executions/s  drift p50 {p50:7.1f} ms"
            f"  p99 {p99:7.1f} ms  SKIPPED {self.skipped}  MISSED {self.missed}"
            f"  duplicates {self.duplicates}  deadlocks {self.deadlocks}"
        )
        shares = "  ".join(
            f"{name} {count} runs, {self.cpu_by_instance.get(name, 0.0):.1f} s CPU"
            for name, count in sorted(self.runs_by_instance.items())
        )
        cost = (
            f"             CPU per execution: instances {per_run:5.0f} us,"
            f" database server {self.database_cpu / executed * 1e6:5.0f} us"
        )
        return [head, f"             {shares}", cost]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _process_cpu(pid: int) -> float:
    """User and system seconds of a live process (and its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def _postgres_cpu() -> float:
    """CPU seconds of every postgres process on this machine (the server the bench uses is
    local, as is the default): the database's share of the work."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _process_cpu(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return total


@asynccontextmanager
async def _instances(url: str, count: int, folder: Path) -> AsyncIterator[dict[str, int]]:
    """`count` serve processes on `url`, ready; yields their pids by instance name."""
    children: dict[str, asyncio.subprocess.Process] = {}
    try:
        for index in range(count):
            name = f"instance-{index + 1}"
            port = _free_port()
            environment = {
                **{k: v for k, v in os.environ.items() if not k.startswith("GQL_SCHEDULER_")},
                "GQL_SCHEDULER_DATABASE_URL": url,
                "GQL_SCHEDULER_PORT": str(port),
                "GQL_SCHEDULER_INSTANCE_NAME": name,
                "GQL_SCHEDULER_MAX_CONCURRENT_EXECUTIONS": "10000",
                "GQL_SCHEDULER_LOG_LEVEL": "WARNING",
            }
            log = (folder / f"{name}.log").open("wb")
            children[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gql_scheduler", "serve",
                env=environment, stdout=log, stderr=log,
            )  # fmt: skip
            log.close()
            children[name].port = port  # type: ignore[attr-defined]
        for child in children.values():
            await _wait_ready(child.port)  # type: ignore[attr-defined]
        yield {name: child.pid for name, child in children.items()}
    finally:
        await _stop(list(children.values()))


async def _wait_ready(port: int) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
        async with asyncio.timeout(READY_TIMEOUT):
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)


async def _stop(children: Sequence[asyncio.subprocess.Process]) -> None:
    for child in children:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()


async def cluster_run(server: str, count: int, jobs: int, seconds: float) -> ClusterRun:
    async with scratch_database(server) as url:
        await asyncio.to_thread(migrations.upgrade, url)
        container = build_container(service_settings(url))
        now = CLOCK.now()
        lead = now + timedelta(seconds=LEAD_SECONDS)
        await insert_jobs(container, spread_interval_jobs(jobs, 1.0, lead))
        first = lead + timedelta(seconds=1)
        with tempfile.TemporaryDirectory() as folder:
            async with _instances(url, count, Path(folder)) as pids:
                await asyncio.sleep(max(0.0, (first - CLOCK.now()).total_seconds()))
                cpu_before = {name: _process_cpu(pid) for name, pid in pids.items()}
                database_before = _postgres_cpu()
                await asyncio.sleep(seconds)
                cpu = {name: _process_cpu(pid) - cpu_before[name] for name, pid in pids.items()}
                database_cpu = _postgres_cpu() - database_before
        window = (first + timedelta(seconds=WARM_UP_SECONDS), first + timedelta(seconds=seconds))
        recorded = await _recorded(container, window, (first, first + timedelta(seconds=seconds)))
        await container.aclose()
        deadlocks = await postgres_deadlocks(url)
    return ClusterRun(
        instances=count,
        seconds=(window[1] - window[0]).total_seconds(),
        cpu_by_instance=cpu,
        database_cpu=database_cpu,
        deadlocks=deadlocks,
        **recorded,
    )


async def _recorded(
    container: Container,
    window: tuple[datetime, datetime],
    measured: tuple[datetime, datetime],
) -> dict[str, Any]:
    """From the store: drifts of the runs due in `window`, what was SKIPPED, MISSED or run
    twice, and the runs each instance started while its CPU was `measured`."""
    query = sa.select(
        executions.c.job_id,
        executions.c.scheduled_for,
        executions.c.status,
        executions.c.started_at,
        executions.c.instance,
    ).where(executions.c.trigger.in_(("SCHEDULE", "CATCH_UP")))
    async with container.database.read() as connection:
        rows = (await connection.execute(query)).all()
    due = [row for row in rows if window[0] <= row.scheduled_for < window[1]]
    ran = Counter((row.job_id, row.scheduled_for) for row in rows if row.started_at is not None)
    started = [
        row
        for row in rows
        if row.started_at is not None and measured[0] <= row.started_at < measured[1]
    ]
    return {
        "drifts_ms": [
            (row.started_at - row.scheduled_for).total_seconds() * 1000
            for row in due
            if row.status == "SUCCEEDED"
        ],
        "skipped": sum(1 for row in due if row.status == "SKIPPED"),
        "missed": sum(1 for row in due if row.status == "MISSED"),
        "duplicates": sum(times - 1 for times in ran.values() if times > 1),
        "runs_by_instance": dict(Counter(row.instance for row in started)),
    }


def run_cluster(instances: int, jobs: int, seconds: float, server: str | None = None) -> str:
    target = postgres_server(server)
    counts = sorted({1, instances})
    lines = [
        f"bench cluster: {jobs} noop jobs every 1 s on one PostgreSQL database, for {seconds:g} s"
        f" (first {WARM_UP_SECONDS:g} s not counted), by number of serve processes"
    ]
    for count in counts:
        lines.extend(asyncio.run(cluster_run(target, count, jobs, seconds)).lines())
    return "\n".join(lines)
