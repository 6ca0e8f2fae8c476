"""An unexpected failure reaches the client masked, with an error id its log line carries:
over HTTP (Strawberry's MaskErrors) and on a subscription (the fast lane), one implementation."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests import queries
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.ws_client import PROTOCOLS, subscription_client

STATS = "{ jobs { edges { node { name stats { total } } } } }"
CREATE = "mutation($input: CreateJobInput!) { createJob(input: $input) { job { id } } }"
JOB_EVENTS = "subscription { jobEvents { type job { name lastExecution { id } } } }"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(settings_for(database_url, ws_keepalive_seconds=0)) as running:
        yield running


async def break_executions_table(server: LiveServer) -> None:
    """A real failure under the resolvers: the table they read is gone."""
    async with server.container.database.write() as connection:
        await connection.execute(sa.text("ALTER TABLE executions RENAME TO executions_gone"))


def logged_ids(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.error_id
        for record in caplog.records
        if getattr(record, "action", None) == "resolver_failed"
    ]


def masked_error(errors: list[dict[str, Any]]) -> str:
    (error,) = errors
    assert error["message"] == "Internal server error."
    assert "executions_gone" not in str(error)
    assert "sqlite" not in str(error).lower()
    extensions = error["extensions"]
    assert extensions["code"] == "INTERNAL_SERVER_ERROR"
    error_id: str = extensions["errorId"]
    assert re.fullmatch(r"[0-9a-f]{32}", error_id)
    return error_id


async def test_an_unexpected_error_over_http_has_the_id_of_its_log_line(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    await server.data(queries.CREATE_JOB, {"input": queries.job_input("broken")})
    await break_executions_table(server)
    caplog.set_level(logging.ERROR, logger="gql_scheduler.api")
    response = await server.http.post("/graphql", json={"query": STATS})
    assert response.status_code == 200
    body = response.json()
    error_id = masked_error(body["errors"])
    assert logged_ids(caplog) == [error_id]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_unexpected_error_in_a_subscription_has_the_id_of_its_log_line(
    server: LiveServer, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    await break_executions_table(server)
    caplog.set_level(logging.ERROR, logger="gql_scheduler.api")
    async with subscription_client(server.ws_url, protocol) as client:
        await client.subscribe("1", JOB_EVENTS)
        from tests.engine_helpers import poll

        async def subscribers() -> int:
            return server.container.feed.subscriber_count

        await poll(subscribers, lambda count: count == 1, within=10.0)
        await server.data(CREATE, {"input": queries.job_input("broken")})
        message = await client.receive()
    assert message["type"] == "next", message
    error_id = masked_error(message["payload"]["errors"])
    assert error_id in logged_ids(caplog)
