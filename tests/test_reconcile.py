"""Many jobs without stalls: the reconcile loop (the safety net under change notifications)
reads them a page at a time, and a serving process keeps what it loaded at start out of the
garbage collector's full passes."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from gql_scheduler.app import build_container
from gql_scheduler.scheduling import engine as engine_module
from gql_scheduler.store.events import EventLog
from gql_scheduler.store.tables import jobs
from tests.engine_helpers import create_job, poll
from tests.graphql_client import GraphQLClient, running_client, settings_for

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def quiet_client(database_url: str) -> AsyncIterator[GraphQLClient]:
    """The app with its reconcile loop idle: the test runs each pass itself."""
    async with running_client(settings_for(database_url, reconcile_seconds=3600)) as client:
        yield client


async def settled(client: GraphQLClient) -> None:
    """Until the engine has acted on every job change it was told of. On PostgreSQL the
    feed hands the jobs' events to the engine too (as for another instance's changes),
    and a re-sync still under way could read the changes this test makes behind its back.
    """
    container = client.container
    async with container.database.read() as connection:
        newest = await EventLog(connection).last_id()

    async def dispatched() -> int:
        return container.feed.last_id

    if container.broker.spans_processes:
        await poll(dispatched, lambda last: last >= newest)
    spawned = container.engine.dispatcher._tasks  # the re-syncs, among others
    async with asyncio.timeout(10):
        await spawned.wait()


async def copy_job_behind_the_engines_back(client: GraphQLClient, job_id: str) -> str:
    """A new active job written straight to the database: no notification, no event."""
    async with client.container.database.write() as connection:
        query = sa.select(jobs).where(jobs.c.id == job_id)
        row = (await connection.execute(query)).mappings().one()
        # Last in id order: found only if the pass reads past its first pages.
        last_id = "ffffffff" + str(uuid.uuid4())[8:]
        copy = {**row, "id": last_id, "name": f"{row['name']}-copy"}
        await connection.execute(jobs.insert().values(**copy))
    return str(copy["id"])


async def test_a_reconcile_pass_rearms_every_job_changed_behind_the_engines_back(
    quiet_client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = quiet_client
    engine = client.container.engine
    ids = [await create_job(client, name=f"job-{index}") for index in range(5)]
    await settled(client)
    assert engine.timers.armed_ids() == set(ids)
    deleted, paused = ids[0], ids[4]
    async with client.container.database.write() as connection:
        await connection.execute(sa.text("DELETE FROM jobs WHERE id = :id"), {"id": deleted})
        await connection.execute(
            sa.text("UPDATE jobs SET state = 'PAUSED', version = version + 1 WHERE id = :id"),
            {"id": paused},
        )
    created = await copy_job_behind_the_engines_back(client, ids[1])
    assert engine.timers.armed_ids() == set(ids)  # nothing told the engine

    monkeypatch.setattr(engine_module, "RECONCILE_PAGE", 2)  # six jobs: three pages
    await engine.reconcile()

    assert engine.timers.armed_ids() == {ids[1], ids[2], ids[3], created}


async def test_a_serving_process_freezes_what_it_loaded_at_start(database_url: str) -> None:
    container = build_container(settings_for(database_url, reconcile_seconds=3600))
    assert gc.get_freeze_count() == 0
    try:
        await container.start(freeze_heap=True)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        await container.aclose()
