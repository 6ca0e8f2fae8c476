"""What the benchmarks share: a throw-away SQLite service, noop jobs, and the statistics.

Not a test: numbers depend on the machine. Each run builds a fresh SQLite database in a
temporary folder (the embedded default), so runs are independent and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import resource
import uuid
from collections.abc import Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from gql_scheduler.app import Container
from gql_scheduler.domain.actions import HandlerAction
from gql_scheduler.domain.clock import SystemClock
from gql_scheduler.domain.jobs import Job, JobSpec, JobState
from gql_scheduler.domain.schedules import Schedule, upcoming_runs
from gql_scheduler.settings import Settings
from gql_scheduler.store.jobs import JobRepository

T = TypeVar("T")
CLOCK = SystemClock()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def service_settings(database_url: str, **overrides: object) -> Settings:
    """The service's settings for a bench run on `database_url`, none from the environment."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        instance_name="bench",
        **overrides,  # type: ignore[arg-type]
    )


def bench_settings(folder: Path, **overrides: object) -> Settings:
    return service_settings(f"sqlite+aiosqlite:///{folder / 'bench.db'}", **overrides)


def noop_job(
    name: str, schedule: Schedule, now: datetime, *, end_at: datetime | None = None
) -> Job:
    spec = JobSpec(name=name, schedules=(schedule,), action=HandlerAction("noop"), end_at=end_at)
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


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """On asyncio's own loop, as `gql-scheduler serve` runs (uvicorn is told so)."""
    return asyncio.run(coroutine)
