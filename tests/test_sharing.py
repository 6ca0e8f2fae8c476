"""Instances on one PostgreSQL database share the claims out: each claims its own share of
the occurrences at once and the others' only when they are still unclaimed a moment later,
so a second instance halves the claims each makes, and the share of one that dies without
a word is taken over, every occurrence still run exactly once."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gql_scheduler.domain.ownership import Shares, owner
from gql_scheduler.scheduling.membership import Membership
from gql_scheduler.store.tables import instances
from tests.test_overload import (
    assert_each_ran_once,
    insert,
    overloaded,
    wait_drained,
)

JOB_IDS = [str(uuid.uuid4()) for _ in range(6000)]
SHARED_JOBS = 400  # every 0.25 s for 1.5 s: 2,800 occurrences, well within capacity


def test_jobs_spread_evenly_over_the_instances() -> None:
    owners = Counter(owner(job_id, ["a", "b", "c"]) for job_id in JOB_IDS)
    assert set(owners) == {"a", "b", "c"}
    for count in owners.values():
        assert abs(count - len(JOB_IDS) / 3) < len(JOB_IDS) * 0.05, owners


def test_only_the_jobs_of_an_instance_that_leaves_change_owner() -> None:
    before = {job_id: owner(job_id, ["a", "b", "c"]) for job_id in JOB_IDS}
    after = {job_id: owner(job_id, ["a", "c"]) for job_id in JOB_IDS}
    moved = {job_id for job_id in JOB_IDS if before[job_id] != after[job_id]}
    assert moved == {job_id for job_id in JOB_IDS if before[job_id] == "b"}


def test_every_instance_agrees_on_the_owner_whatever_order_it_lists_them_in() -> None:
    shares = [Shares(names, me) for names, me in ((["b", "a"], "a"), (["a", "b"], "b"))]
    for job_id in JOB_IDS[:500]:
        assert [share.mine(job_id) for share in shares].count(True) == 1


def test_alone_an_instance_owns_everything() -> None:
    assert all(Shares([], "only").mine(job_id) for job_id in JOB_IDS[:100])


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_instances_each_claim_about_half(database_url: str) -> None:
    first, second = overloaded(database_url, "first"), overloaded(database_url, "second")
    grid = await insert(first, SHARED_JOBS)
    await first.start()
    try:
        await second.start()
        try:
            rows = await wait_drained(first, sum(grid.values()))
            attempts = [first.engine.claims_attempted, second.engine.claims_attempted]
        finally:
            await second.aclose()
    finally:
        await first.aclose()
    assert_each_ran_once(rows, grid)
    total = sum(grid.values())
    # Without sharing each instance claims every occurrence (both near `total`).
    for attempted in attempts:
        assert attempted < 0.7 * total, (attempts, total)
    assert sum(attempts) < 1.3 * total, (attempts, total)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_share_of_an_instance_gone_without_a_word_is_taken_over(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = overloaded(database_url, "first"), overloaded(database_url, "second")
    grid = await insert(first, SHARED_JOBS // 4)
    await first.start()
    try:
        await second.start()

        # Gone as after kill -9: nothing tells the others; its heartbeat just stops.
        async def vanish(self: Membership) -> None:
            return None

        monkeypatch.setattr(Membership, "leave", vanish)
        await second.aclose()
        rows = await wait_drained(first, sum(grid.values()))
    finally:
        await first.aclose()
    assert_each_ran_once(rows, grid)
    assert first.engine.membership.shares.instances == ("first",)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_an_instance_silent_for_a_day_is_forgotten_at_start_up(database_url: str) -> None:
    container = overloaded(database_url, "fresh")
    long_ago = datetime.now(UTC) - timedelta(days=2)
    recent = datetime.now(UTC) - timedelta(minutes=5)
    async with container.database.write() as connection:
        for name, at in (("crashed-long-ago", long_ago), ("crashed-lately", recent)):
            values = {"name": name, "started_at": at, "heartbeat_at": at}
            await connection.execute(instances.insert().values(**values))
    await container.start()
    try:
        async with container.database.read() as connection:
            names = set((await connection.scalars(sa.select(instances.c.name))).all())
    finally:
        await container.aclose()
    assert names == {"fresh", "crashed-lately"}
