"""A database outage loses no occurrence: every one is recorded exactly once, run or settled
by the job's misfire policy, as after a restart. PostgreSQL is cut by a TCP proxy of the
test's own while the instance keeps running."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import queries
from tests.engine_helpers import poll
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.timeout(120)

STEP = timedelta(seconds=0.5)
OUTAGE = timedelta(seconds=4)
# A claim that failed is tried once more after 0.5 s (engine.CLAIM_RETRY_SECONDS): an
# occurrence that close to the restore may still run on time.
RETRIED = timedelta(seconds=0.5)
POLICIES = ("SKIP", "RUN_ONCE", "RUN_ALL", "FAIL")
OCCURRENCES = ("SCHEDULE", "CATCH_UP")
HISTORY = """
query($jobId: ID) {
  executions(first: 500, filter: {jobId: $jobId}) {
    edges { node { scheduledFor status trigger } }
  }
}
"""


@pytest.fixture
async def behind_a_proxy(database_url: str) -> AsyncIterator[tuple[LiveServer, TcpProxy]]:
    async with tcp_proxy(database_url) as proxy:
        settings = settings_for(
            proxy.url_for(database_url),
            reconcile_seconds=0.5,
            misfire_grace_seconds=0.5,
            event_poll_seconds=0.2,
        )
        async with live_server(settings) as server:
            yield server, proxy


async def create_jobs(server: LiveServer, anchor: datetime) -> dict[str, str]:
    ids = {}
    for policy in POLICIES:
        fields = {
            "schedules": [{"interval": {"everySeconds": 0.5, "anchor": anchor.isoformat()}}],
            "action": {"handler": {"name": "noop"}},
            "misfirePolicy": policy,
        }
        data = await server.data(queries.CREATE_JOB, {"input": queries.job_input(policy, **fields)})
        assert data["createJob"]["errors"] == [], data
        ids[policy] = data["createJob"]["job"]["id"]
    return ids


async def history(server: LiveServer, job_id: str) -> list[dict[str, Any]]:
    data = await server.data(HISTORY, {"jobId": job_id})
    runs = [edge["node"] for edge in data["executions"]["edges"]]
    return sorted(
        (run for run in runs if run["trigger"] in OCCURRENCES),
        key=lambda run: datetime.fromisoformat(run["scheduledFor"]),
    )


async def time_passes(until: datetime) -> None:
    """The outage lasts until `until`: real time must pass, since the timers fire on it."""
    await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()))


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite has no network path to cut
async def test_no_occurrence_of_an_outage_is_lost_whatever_the_policy(
    behind_a_proxy: tuple[LiveServer, TcpProxy], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gql_scheduler.store")
    server, proxy = behind_a_proxy
    anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    ids = await create_jobs(server, anchor)
    await time_passes(anchor + 2 * STEP)
    cut_at = datetime.now(UTC)
    await proxy.cut()
    await time_passes(cut_at + OUTAGE)
    await proxy.restore()
    restored_at = datetime.now(UTC)
    settled_at = restored_at + 4 * STEP

    async def recorded() -> dict[str, list[dict[str, Any]]]:
        return {policy: await history(server, job) for policy, job in ids.items()}

    def through_settled(found: dict[str, list[dict[str, Any]]]) -> bool:
        return all(
            runs and datetime.fromisoformat(runs[-1]["scheduledFor"]) >= settled_at
            for runs in found.values()
        )

    found = await poll(recorded, through_settled, within=30)
    for runs in found.values():
        assert datetime.fromisoformat(runs[0]["scheduledFor"]) <= anchor + STEP, table(runs)
    inside = (cut_at + STEP, restored_at - STEP - RETRIED)  # nobody could claim these
    assert_every_occurrence_settled(found, inside)
    actions = [getattr(record, "action", None) for record in caplog.records]
    assert actions.count("database_unreachable") == 1  # said once, however often it failed
    assert actions.count("database_reachable") == 1
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("gql_scheduler")]


def assert_every_occurrence_settled(
    found: dict[str, list[dict[str, Any]]], inside: tuple[datetime, datetime]
) -> None:
    """Each policy's runs are the whole grid, once each, and those `inside` the outage
    were settled by the policy."""
    for policy, runs in found.items():
        times = [datetime.fromisoformat(run["scheduledFor"]) for run in runs]
        grid = [times[0] + i * STEP for i in range(len(times))]
        assert times == grid, f"{policy}: gaps or duplicates\n{table(runs)}"
        during = [run for run, at in zip(runs, times, strict=True) if inside[0] < at < inside[1]]
        assert len(during) >= 3, table(runs)
        assert_settled(policy, during, runs)


def table(runs: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['scheduledFor']} {r['trigger']:<8} {r['status']}" for r in runs)


def assert_settled(policy: str, during: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    statuses = [run["status"] for run in during]
    triggers = [run["trigger"] for run in during]
    context = f"{policy}\n{table(runs)}"
    if policy == "SKIP":
        assert set(statuses) == {"MISSED"}, context
    elif policy == "FAIL":
        assert set(statuses) == {"FAILED"}, context
    elif policy == "RUN_ALL":
        assert set(triggers) == {"CATCH_UP"}, context
    else:
        # RUN_ONCE: one run for the owed ones, the latest; the rest are MISSED. (When the
        # claim retried at the restore wins that latest occurrence, it is that run.)
        assert triggers.count("CATCH_UP") <= 1, context
        assert statuses.count("MISSED") >= len(during) - 1, context
