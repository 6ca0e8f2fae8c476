"""`/readyz`: 200 only when this instance can do its work; 503 naming what it cannot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gql_scheduler.services.readiness import ReadinessService
from gql_scheduler.store import migrations
from gql_scheduler.store.database import Database
from tests.engine_helpers import poll
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(90)

READY_CHECKS = {"database": True, "migrations": True, "scheduler": True, "broker": True}


async def readyz(server: LiveServer, **headers: str) -> tuple[int, dict[str, Any]]:
    response = await server.http.get("/readyz", headers=headers)
    body: dict[str, Any] = response.json()
    return response.status_code, body


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(settings_for(database_url, auth="required")) as running:
        yield running


async def test_a_started_instance_is_ready(server: LiveServer) -> None:
    status, body = await readyz(server)
    assert status == 200
    assert body["status"] == "ready"
    assert body["checks"] == READY_CHECKS
    assert body["problems"] == []


async def test_probes_need_no_key_and_answer_any_host(server: LiveServer) -> None:
    status, _ = await readyz(server, Host="10.4.0.17:8000")  # a pod's IP, as kubelet sends
    assert status == 200


async def test_a_schema_behind_this_version_is_not_ready(
    server: LiveServer, database_url: str
) -> None:
    previous = "0003"
    await asyncio.to_thread(migrations.downgrade, database_url, previous)
    status, body = await readyz(server)
    assert status == 503
    assert body["checks"]["migrations"] is False
    assert body["checks"]["database"] is True
    assert f"at revision {previous}, this version needs {migrations.head_revision()}" in (
        " ".join(body["problems"])
    )


async def test_a_component_that_is_down_is_named(database_url: str) -> None:
    database = Database(database_url)
    try:
        service = ReadinessService(database, {"scheduler": lambda: False, "broker": lambda: True})
        found = await service.check()
    finally:
        await database.dispose()
    assert not found.ready
    assert found.checks == {**READY_CHECKS, "scheduler": False}
    assert found.problems == ["the scheduler is not running"]


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite has no network path to cut
async def test_an_unreachable_database_is_not_ready_until_it_is_back(
    behind_a_proxy: tuple[LiveServer, TcpProxy],
) -> None:
    server, proxy = behind_a_proxy
    assert (await readyz(server))[0] == 200
    await proxy.cut()

    async def probed() -> tuple[int, dict[str, Any]]:
        return await readyz(server)

    _, body = await poll(probed, lambda seen: seen[0] == 503, within=15)
    assert body["checks"]["database"] is False
    assert body["checks"]["broker"] is False  # its listening connection went with it
    assert any("database" in problem for problem in body["problems"])
    await proxy.restore()
    await poll(probed, lambda seen: seen == (200, {**seen[1], "checks": READY_CHECKS}), within=30)
