"""Offered more than it can do, the engine runs at capacity and loses nothing: every
occurrence is run exactly once, late, instead of being taken for a misfire (MISSED) or for
an overlap with a run that only started late because of the backlog (SKIPPED). And two
instances sharing PostgreSQL under that load never deadlock and never run one twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gql_scheduler.app import Container, build_container
from gql_scheduler.bench.common import noop_job
from gql_scheduler.bench.databases import postgres_deadlocks
from gql_scheduler.domain.jobs import Job
from gql_scheduler.domain.schedules import IntervalSchedule
from gql_scheduler.store.jobs import JobRepository
from gql_scheduler.store.tables import executions
from tests.graphql_client import settings_for

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(240)]

# 16,000 occurrences/s for 1.5 s: several times what one instance on two cores can claim,
# so the backlog reaches seconds, past the misfire grace and the reconcile period below.
JOBS = 4000
EVERY = 0.25
FIRING = timedelta(seconds=1.5)
LEAD = timedelta(seconds=2)  # from the jobs' insertion to their first occurrence
DRAINED_WITHIN = 180.0
BURST = 5000  # due in one instant: ten claim batches


def overload_jobs(
    first: datetime, now: datetime, count: int = JOBS, *, burst: bool = False
) -> list[Job]:
    """`count` jobs every EVERY seconds for FIRING, spread over one interval; or, as a
    `burst`, each due once, all at `first`."""
    return [
        noop_job(
            f"overload-{index}",
            IntervalSchedule(
                EVERY, first if burst else first + timedelta(seconds=EVERY * index / count)
            ),
            now,
            end_at=first if burst else first + FIRING,
        )
        for index in range(count)
    ]


def owed(jobs: list[Job]) -> Counter[tuple[str, datetime]]:
    grid: Counter[tuple[str, datetime]] = Counter()
    for job in jobs:
        (schedule,) = job.spec.schedules
        assert isinstance(schedule, IntervalSchedule)
        at = schedule.anchor
        while job.spec.end_at is not None and at <= job.spec.end_at:
            grid[(job.id, at)] += 1
            at += timedelta(seconds=EVERY)
    return grid


async def recorded(container: Container) -> list[sa.Row]:
    query = sa.select(executions.c.job_id, executions.c.scheduled_for, executions.c.status).where(
        executions.c.trigger.in_(("SCHEDULE", "CATCH_UP"))
    )
    async with container.database.read() as connection:
        return list((await connection.execute(query)).all())


async def wait_drained(container: Container, expected: int) -> list[sa.Row]:
    rows: list[sa.Row] = []
    async with asyncio.timeout(DRAINED_WITHIN):
        while True:
            rows = await recorded(container)
            settled = [row for row in rows if row.status not in ("QUEUED", "RUNNING")]
            if len(settled) >= expected:
                return rows
            await asyncio.sleep(0.5)


def overloaded(database_url: str, instance: str) -> Container:
    settings = settings_for(
        database_url,
        instance_name=instance,
        reconcile_seconds=0.5,
        misfire_grace_seconds=0.5,
        max_concurrent_executions=10_000,
    )
    return build_container(settings)


async def insert(
    container: Container, count: int = JOBS, *, burst: bool = False
) -> Counter[tuple[str, datetime]]:
    """`count` jobs, their occurrences starting after LEAD: the grid of those owed."""
    now = datetime.now(UTC)
    jobs = overload_jobs(now + LEAD, now, count, burst=burst)
    async with container.database.write() as connection:
        await JobRepository(connection).insert_many(jobs)
    return owed(jobs)


def assert_each_ran_once(rows: list[sa.Row], grid: Counter[tuple[str, datetime]]) -> None:
    statuses = Counter(row.status for row in rows)
    assert statuses == {"SUCCEEDED": sum(grid.values())}, statuses
    seen = Counter((row.job_id, row.scheduled_for.replace(tzinfo=UTC)) for row in rows)
    assert seen == grid


async def run_alone(database_url: str, count: int, *, burst: bool = False) -> None:
    """One instance fires `count` jobs until every occurrence settled: each ran once."""
    container = overloaded(database_url, "only")
    grid = await insert(container, count, burst=burst)
    await container.start()
    try:
        rows = await wait_drained(container, sum(grid.values()))
    finally:
        await container.aclose()
    assert_each_ran_once(rows, grid)


async def test_past_capacity_every_occurrence_runs_exactly_once(database_url: str) -> None:
    await run_alone(database_url, JOBS)


async def test_a_burst_of_jobs_due_in_the_same_instant_runs_each_once(database_url: str) -> None:
    await run_alone(database_url, BURST, burst=True)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_instances_past_capacity_never_deadlock_nor_run_one_twice(
    database_url: str,
) -> None:
    first, second = overloaded(database_url, "first"), overloaded(database_url, "second")
    grid = await insert(first, JOBS // 2)
    await first.start()
    try:
        await second.start()
        try:
            rows = await wait_drained(first, sum(grid.values()))
        finally:
            await second.aclose()
    finally:
        await first.aclose()
    assert_each_ran_once(rows, grid)
    # Counted by PostgreSQL for this database; the instances' connections are closed, so
    # their backends have reported their statistics.
    assert await postgres_deadlocks(database_url) == 0
