"""The npm graphql-ws client, as frontends use it, against a real server on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gql_scheduler.domain.access import Role
from tests import queries
from tests.engine_helpers import poll
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.node_client import NodeClient, NodeClientLauncher, Operation

KEEPALIVE_SECONDS = 0.2
ONE_RUN = ["QUEUED", "STARTED", "SUCCEEDED"]

EXECUTION_EVENTS = """
subscription($jobId: ID) {
  executionEvents(jobId: $jobId) { id type execution { id jobId status trigger job { name } } }
}
"""
JOB_EVENTS = "subscription { jobEvents { id type jobId } }"
TRIGGER = "mutation($id: ID!) { triggerJob(id: $id, force: true) { execution { id } } }"
JOB = "query($id: ID!) { job(id: $id) { name state pauseNote } }"
JOB_NAME = "query($id: ID!) { job(id: $id) { name } }"
PAUSE = """
mutation($id: ID!, $note: String) {
  pauseJob(id: $id, note: $note) { job { state pauseNote } errors { code } }
}
"""


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    settings = settings_for(database_url, ws_keepalive_seconds=KEEPALIVE_SECONDS)
    async with live_server(settings) as running:
        yield running


async def create_job(server: LiveServer, name: str) -> str:
    data = await server.data(queries.CREATE_JOB, {"input": queries.job_input(name)})
    assert data["createJob"]["errors"] == [], data
    job_id: str = data["createJob"]["job"]["id"]
    return job_id


async def until_subscribed(server: LiveServer, count: int = 1) -> None:
    async def current() -> int:
        return server.container.feed.subscriber_count

    await poll(current, lambda seen: seen == count, within=5.0)


async def collect_data(client: NodeClient, operation_id: str, count: int) -> list[Any]:
    """The data of the next `count` results, which must all be clean results of the operation."""
    found = []
    for _ in range(count):
        event = await client.next_event("next")
        assert event["id"] == operation_id, event
        assert "errors" not in event["payload"], event
        found.append(event["payload"]["data"])
    return found


async def test_execution_events_reach_the_npm_client_in_order(
    server: LiveServer, node_client: NodeClientLauncher
) -> None:
    job_id = await create_job(server, "npm-live")
    watch = Operation("watch", EXECUTION_EVENTS, {"jobId": job_id})
    async with node_client(server.ws_url, operations=[watch]) as client:
        await client.next_event("connected")
        await until_subscribed(server)
        execution_id = (await server.data(TRIGGER, {"id": job_id}))["triggerJob"]["execution"]["id"]
        events = [data["executionEvents"] for data in await collect_data(client, "watch", 3)]
    assert [event["type"] for event in events] == ONE_RUN
    ids = [int(event["id"]) for event in events]
    assert ids == sorted(set(ids))
    assert events[-1]["execution"] == {
        "id": execution_id,
        "jobId": job_id,
        "status": "SUCCEEDED",
        "trigger": "MANUAL",
        "job": {"name": "npm-live"},
    }


async def test_a_query_and_a_mutation_over_the_npm_client(
    server: LiveServer, node_client: NodeClientLauncher
) -> None:
    job_id = await create_job(server, "npm-ops")
    read = Operation("read", JOB_NAME, {"id": job_id})
    pause = Operation("pause", PAUSE, {"id": job_id, "note": "from node"})
    async with node_client(server.ws_url, operations=[read, pause]) as client:
        assert await client.wait_exit() == 0  # both operations ended: the client is done
    results = {event["id"]: event["payload"] for event in client.events_of("next")}
    assert results["read"] == {"data": {"job": {"name": "npm-ops"}}}
    assert results["pause"] == {
        "data": {"pauseJob": {"job": {"state": "PAUSED", "pauseNote": "from node"}, "errors": []}}
    }
    # The server runs them side by side, so they may end in either order.
    assert sorted(event["id"] for event in client.events_of("complete")) == ["pause", "read"]
    assert client.events_of("error") == []
    assert client.close_code == 1000
    stored = await server.data(JOB, {"id": job_id})
    assert stored["job"]["state"] == "PAUSED"


async def test_a_subscription_with_a_validation_error_reaches_the_error_sink(
    server: LiveServer, node_client: NodeClientLauncher
) -> None:
    invalid = Operation("bad", "subscription { executionEvents { noSuchField } }")
    async with node_client(server.ws_url, operations=[invalid]) as client:
        error = await client.next_event("error")
        assert await client.wait_exit() == 0
    assert error["id"] == "bad"
    assert error["kind"] == "graphql"  # the server's error message, not a close
    [problem] = error["errors"]
    assert "noSuchField" in problem["message"]
    assert "Traceback" not in str(error)
    assert client.events_of("next") == []
    assert client.events_of("complete") == []


async def test_a_subscription_with_a_syntax_error_reaches_the_error_sink(
    server: LiveServer, node_client: NodeClientLauncher
) -> None:
    # Today the server answers a document that does not parse with a bare "complete".
    unparsable = Operation("bad", "subscription { executionEvents {")
    async with node_client(server.ws_url, operations=[unparsable]) as client:
        event = await client.next_event()
    assert event["event"] == "error", event
    assert event["kind"] == "graphql"
    assert "Syntax Error" in event["errors"][0]["message"]


async def test_a_close_by_the_server_reaches_the_client_with_its_code(
    server: LiveServer, node_client: NodeClientLauncher
) -> None:
    # Two subscriptions under one id on the wire: the server closes with 4409.
    first = Operation("first", JOB_EVENTS, wire_id="same")
    second = Operation("second", JOB_EVENTS, wire_id="same")
    async with node_client(server.ws_url, operations=[first, second]) as client:
        assert await client.wait_exit() == 0  # 4409 is fatal for graphql-ws: no retry
    assert client.close_code == 4409
    for operation_id in ("first", "second"):
        [error] = client.events_of("error", operation_id)
        assert error["kind"] == "close"
        assert error["code"] == 4409
        assert error["reason"] == "Subscriber for same already exists"
    assert len(client.events_of("connected")) == 1


async def test_server_pings_keep_the_npm_client_connected(
    server: LiveServer, node_client: NodeClientLauncher
) -> None:
    watch = Operation("watch", JOB_EVENTS)
    async with node_client(server.ws_url, operations=[watch]) as client:
        await client.next_event("connected")
        await until_subscribed(server)

        def answered_several_pings() -> bool:
            return (
                client.keepalives("ping", received=True) >= 3
                and client.keepalives("pong", received=False) >= 3
            )

        await client.wait_for(answered_several_pings)
        job_id = await create_job(server, "after-pings")  # the connection still carries data
        [data] = await collect_data(client, "watch", 1)
        assert client.close_code is None
    assert data["jobEvents"]["type"] == "CREATED"
    assert data["jobEvents"]["jobId"] == job_id


async def test_the_server_answers_the_npm_client_pings(
    server: LiveServer, node_client: NodeClientLauncher
) -> None:
    watch = Operation("watch", JOB_EVENTS)
    async with node_client(server.ws_url, operations=[watch], keep_alive_ms=100) as client:

        def answered() -> bool:
            return client.keepalives("pong", received=True) >= 3

        await client.wait_for(answered)
        assert client.keepalives("ping", received=False) >= 3
        assert client.close_code is None


async def test_leaving_the_client_closes_its_socket_cleanly(
    server: LiveServer, node_client: NodeClientLauncher
) -> None:
    watch = Operation("watch", JOB_EVENTS)
    async with node_client(server.ws_url, operations=[watch]) as client:
        await client.next_event("connected")
        await until_subscribed(server)
    assert client.process.returncode == 0  # it exited by itself: it was not killed
    assert client.close_code == 1000
    await until_subscribed(server, count=0)


# ---- API keys in connectionParams, as a frontend sends them


@pytest.fixture
async def secured(database_url: str) -> AsyncIterator[tuple[LiveServer, dict[Role, str]]]:
    """A server that requires keys, and a bearer secret of each role."""
    settings = settings_for(
        database_url, auth="required", ws_keepalive_seconds=0, auth_refresh_seconds=0.2
    )
    async with live_server(settings) as running:
        keys = running.container.api_keys
        secrets = {role: (await keys.create(f"{role}-key", role))[1] for role in Role}
        await keys.refresh()
        yield running, secrets


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("params", [None, bearer("gqls_0000000000000000_wrong")])
async def test_without_a_valid_key_the_npm_client_is_closed_with_4401(
    secured: tuple[LiveServer, dict[Role, str]],
    node_client: NodeClientLauncher,
    params: dict[str, str] | None,
) -> None:
    server, _ = secured
    watch = Operation("watch", JOB_EVENTS)
    async with node_client(server.ws_url, operations=[watch], connection_params=params) as client:
        assert await client.wait_exit() == 0  # 4401 is fatal for graphql-ws: no retry
    assert client.close_code == 4401
    [error] = client.events_of("error", "watch")
    assert (error["kind"], error["code"]) == ("close", 4401)
    assert client.events_of("next") == []


async def test_with_a_key_in_connection_params_the_npm_client_subscribes(
    secured: tuple[LiveServer, dict[Role, str]], node_client: NodeClientLauncher
) -> None:
    server, secrets = secured
    watch = Operation("watch", JOB_EVENTS)
    params = bearer(secrets[Role.VIEWER])
    async with node_client(server.ws_url, operations=[watch], connection_params=params) as client:
        await client.next_event("connected")
        await until_subscribed(server)
        created = await server.http.post(
            "/graphql",
            json={"query": queries.CREATE_JOB, "variables": {"input": queries.job_input("keyed")}},
            headers=bearer(secrets[Role.ADMIN]),
        )
        [data] = await collect_data(client, "watch", 1)
    assert data["jobEvents"]["type"] == "CREATED"
    assert data["jobEvents"]["jobId"] == created.json()["data"]["createJob"]["job"]["id"]


async def test_an_operation_beyond_the_key_role_closes_the_npm_client_with_4403(
    secured: tuple[LiveServer, dict[Role, str]], node_client: NodeClientLauncher
) -> None:
    server, secrets = secured
    pause = Operation("pause", PAUSE, {"id": "1"})
    params = bearer(secrets[Role.VIEWER])
    async with node_client(server.ws_url, operations=[pause], connection_params=params) as client:
        assert await client.wait_exit() == 0  # retryAttempts 0: no second try
    assert client.close_code == 4403
    [error] = client.events_of("error", "pause")
    assert (error["kind"], error["code"]) == ("close", 4403)
    assert "pauseJob needs the operator role" in error["reason"]
    assert client.events_of("next") == []


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_subscribes_and_revoking_its_key_closes_the_npm_client(
    secured: tuple[LiveServer, dict[Role, str]], node_client: NodeClientLauncher, role: Role
) -> None:
    server, secrets = secured
    watch = Operation("watch", JOB_EVENTS)
    params = bearer(secrets[role])
    async with node_client(server.ws_url, operations=[watch], connection_params=params) as client:
        await client.next_event("connected")
        await until_subscribed(server)
        # As `gql-scheduler revoke-api-key` does: in the database, seen at the next refresh.
        await server.container.api_keys.revoke(f"{role}-key")
        assert await client.wait_exit() == 0  # 4401 is fatal for graphql-ws: no retry
    assert client.close_code == 4401
    [error] = client.events_of("error", "watch")
    assert (error["kind"], error["code"]) == ("close", 4401)
    assert "revoked" in error["reason"]
    await until_subscribed(server, count=0)
