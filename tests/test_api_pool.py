"""API requests never take the connections the engine needs: the API has its own pool.

With every connection of the API's pool held, an API request waits while the engine
keeps claiming and finishing runs; and a flood of expensive but allowed reads leaves a
sub-second job running on time, none of its runs SKIPPED or MISSED.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import sqlalchemy as sa

from gql_scheduler.domain.executions import ExecutionStatus
from gql_scheduler.store.database import Database
from gql_scheduler.store.tables import executions
from tests.engine_helpers import create_job, poll
from tests.graphql_client import running_client, settings_for

JOBS = "{ jobs { totalCount } }"
TICK = {"schedules": [{"interval": {"everySeconds": 0.5}}]}
# Allowed (about 2,700 of 10,000), and about 100 reads per request over 50 jobs.
EXPENSIVE = """
{ jobs(first: 50) { edges { node { name stats { total } executions(first: 5) { totalCount } } } } }
"""


async def statuses_of(database: Database, job_id: str) -> list[str]:
    """Read through the engine's own pool (the API's may be exhausted)."""
    async with database.read() as connection:
        rows = await connection.execute(
            sa.select(executions.c.status)
            .where(executions.c.job_id == job_id)
            .order_by(executions.c.scheduled_for)
        )
        return [row.status for row in rows]


def succeeded(statuses: list[str]) -> int:
    return statuses.count(ExecutionStatus.SUCCEEDED.value)


async def test_the_engine_runs_while_every_api_connection_is_taken(database_url: str) -> None:
    settings = settings_for(database_url, api_pool_size=2, api_pool_timeout_seconds=30)
    async with running_client(settings) as client:
        container = client.container
        job_id = await create_job(client, "tick", **TICK)
        before = succeeded(await statuses_of(container.database, job_id))
        async with contextlib.AsyncExitStack() as held:
            for _ in range(settings.api_pool_size):
                await held.enter_async_context(container.api_database.engine.connect())
            waiting = asyncio.ensure_future(client.execute(JOBS))
            try:
                await poll(
                    lambda: statuses_of(container.database, job_id),
                    lambda seen: succeeded(seen) >= before + 3,
                    within=15.0,
                )
                # The request is still waiting for a connection of the API's own.
                assert not waiting.done()
            except BaseException:
                waiting.cancel()
                raise
        async with asyncio.timeout(15):
            body = await waiting
        assert body == {"data": {"jobs": {"totalCount": 1}}}


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_flood_of_api_reads_does_not_delay_the_engine(database_url: str) -> None:
    settings = settings_for(database_url, api_pool_size=3)
    async with running_client(settings) as client:
        for index in range(50):
            await create_job(client, f"listed-{index:02d}")
        job_id = await create_job(client, "tick", **TICK)
        flooding = True
        answered: list[dict[str, Any]] = []

        async def flood() -> None:
            while flooding:
                answered.append(await client.execute(EXPENSIVE))

        floods = [asyncio.ensure_future(flood()) for _ in range(10)]
        try:
            start = len(await statuses_of(client.container.database, job_id))
            seen = await poll(
                lambda: statuses_of(client.container.database, job_id),
                lambda statuses: len(statuses) >= start + 8,
                within=30.0,
            )
        finally:
            flooding = False
            async with asyncio.timeout(30):
                await asyncio.gather(*floods)
        during = seen[start:]
        assert ExecutionStatus.SKIPPED.value not in during
        assert ExecutionStatus.MISSED.value not in during
        assert answered
        assert all("errors" not in body for body in answered), answered[0]


async def test_requests_beyond_the_concurrency_limit_wait_then_get_503(database_url: str) -> None:
    settings = settings_for(
        database_url,
        api_pool_size=1,
        api_pool_timeout_seconds=30,
        api_max_concurrent_requests=2,
        api_queue_seconds=0.5,
    )
    async with running_client(settings) as client:
        container = client.container
        async with contextlib.AsyncExitStack() as held:
            # The API's one connection taken: the requests let in wait for it, in flight.
            await held.enter_async_context(container.api_database.engine.connect())
            in_flight = [asyncio.ensure_future(client.execute(JOBS)) for _ in range(2)]

            async def served() -> int:
                in_use: int = client.app.state.request_slots.in_use
                return in_use

            await poll(served, lambda seen: seen == 2, within=10)
            try:
                refused = await client.http.post("/graphql", json={"query": JOBS})
            finally:
                held_open = [not request.done() for request in in_flight]
            assert held_open == [True, True]
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
        async with asyncio.timeout(15):
            answered = await asyncio.gather(*in_flight)
        assert all(body == {"data": {"jobs": {"totalCount": 0}}} for body in answered)
        # A slot is free again: served at once.
        assert (await client.http.post("/graphql", json={"query": JOBS})).status_code == 200
