"""API keys and roles on websockets, over both protocols, on a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from gql_scheduler.domain.access import Role
from tests import queries
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.test_subscriptions import EXECUTION_EVENTS, JOB_EVENTS
from tests.ws_client import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, raw_connection, subscription_client

pytestmark = pytest.mark.timeout(90)

PAUSE = "mutation($id: ID!) { pauseJob(id: $id) { job { state } errors { code } } }"


@dataclass
class Secured:
    server: LiveServer
    secrets: dict[Role, str]
    job_id: str

    def bearer(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}"}


@pytest.fixture
async def secured(database_url: str) -> AsyncIterator[Secured]:
    settings = settings_for(
        database_url, auth="required", auth_refresh_seconds=0.2, ws_keepalive_seconds=0
    )
    async with live_server(settings) as server:
        keys = server.container.api_keys
        secrets = {role: (await keys.create(f"{role}-key", role))[1] for role in Role}
        await keys.refresh()
        headers = {"Authorization": f"Bearer {secrets[Role.ADMIN]}"}
        response = await server.http.post(
            "/graphql",
            json={"query": queries.CREATE_JOB, "variables": {"input": queries.job_input("ws")}},
            headers=headers,
        )
        job_id = response.json()["data"]["createJob"]["job"]["id"]
        yield Secured(server, secrets, job_id)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "payload",
    [{}, {"Authorization": "Bearer gqls_0000000000000000_wrong"}, {"Authorization": "Basic x"}],
)
async def test_no_or_a_bad_key_is_closed_with_4401(
    secured: Secured, protocol: str, payload: dict[str, str]
) -> None:
    async with raw_connection(secured.server.ws_url, protocol) as client:
        await client.send_init(payload)
        code, reason = await client.closed()
    assert code == 4401
    assert "API key" in reason


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_subscribing_before_connection_init_is_refused(
    secured: Secured, protocol: str
) -> None:
    async with raw_connection(secured.server.ws_url, protocol) as client:
        await client.subscribe("1", JOB_EVENTS)
        code, _ = await client.closed()
    assert code == 4401
    assert secured.server.container.feed.subscriber_count == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("role", list(Role))
async def test_every_role_subscribes_with_the_key_in_connection_init(
    secured: Secured, protocol: str, role: Role
) -> None:
    async with subscription_client(
        secured.server.ws_url, protocol, init_payload=secured.bearer(role)
    ) as client:
        await client.subscribe("1", JOB_EVENTS, {"jobId": secured.job_id, "after": "0"})
        first = await client.next_data()
    assert first["jobEvents"]["type"] == "CREATED"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_key_may_come_on_the_upgrade_request(secured: Secured, protocol: str) -> None:
    async with subscription_client(
        secured.server.ws_url, protocol, additional_headers=secured.bearer(Role.VIEWER)
    ) as client:
        await client.subscribe("1", JOB_EVENTS, {"jobId": secured.job_id, "after": "0"})
        assert (await client.next_data())["jobEvents"]["type"] == "CREATED"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_bad_key_in_the_payload_is_not_saved_by_a_good_upgrade_header(
    secured: Secured, protocol: str
) -> None:
    headers = secured.bearer(Role.ADMIN)
    async with raw_connection(secured.server.ws_url, protocol, additional_headers=headers) as c:
        await c.send_init({"Authorization": "Bearer gqls_0000000000000000_wrong"})
        code, _ = await c.closed()
    assert code == 4401


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_operation_beyond_the_role_closes_with_4403_and_changes_nothing(
    secured: Secured, protocol: str
) -> None:
    async with subscription_client(
        secured.server.ws_url, protocol, init_payload=secured.bearer(Role.VIEWER)
    ) as client:
        await client.subscribe("1", PAUSE, {"id": secured.job_id})
        code, reason = await client.closed()
    assert code == 4403
    assert "pauseJob needs the operator role" in reason
    state = await _job_state(secured)
    assert state == "ACTIVE"


async def test_an_operator_pauses_over_the_websocket(secured: Secured) -> None:
    async with subscription_client(
        secured.server.ws_url, TRANSPORT_WS, init_payload=secured.bearer(Role.OPERATOR)
    ) as client:
        await client.subscribe("1", PAUSE, {"id": secured.job_id})
        data = await client.next_data()
    assert data["pauseJob"] == {"job": {"state": "PAUSED"}, "errors": []}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_revoking_a_key_closes_its_open_subscriptions(
    secured: Secured, protocol: str
) -> None:
    server = secured.server
    async with (
        subscription_client(
            server.ws_url, protocol, init_payload=secured.bearer(Role.VIEWER)
        ) as revoked,
        subscription_client(
            server.ws_url, protocol, init_payload=secured.bearer(Role.OPERATOR)
        ) as kept,
    ):
        for client in (revoked, kept):
            await client.subscribe("1", EXECUTION_EVENTS, {"jobId": secured.job_id})
        from tests.test_subscriptions import _until_subscribed

        await _until_subscribed(server, count=2)
        # As `revoke-api-key` does it: in the database, seen by the next refresh.
        await server.container.api_keys.revoke("viewer-key")
        code, reason = await revoked.closed()
        assert code == 4401
        assert "revoked" in reason
        await _until_subscribed(server, count=1)
        await kept.subscribe("2", JOB_EVENTS, {"jobId": secured.job_id, "after": "0"})
        assert (await kept.next_data())["jobEvents"]["type"] == "CREATED"


async def _job_state(secured: Secured) -> str:
    response = await secured.server.http.post(
        "/graphql",
        json={
            "query": "query($id: ID!) { job(id: $id) { state } }",
            "variables": {"id": secured.job_id},
        },
        headers=secured.bearer(Role.VIEWER),
    )
    state: str = response.json()["data"]["job"]["state"]
    return state


DELETE = "mutation($id: ID!) { deleteJob(id: $id) { deletedJobId errors { code } } }"
RESUME = "mutation($id: ID!) { resumeJob(id: $id) { job { state } errors { code } } }"
MATRIX = [(RESUME, Role.OPERATOR), (DELETE, Role.ADMIN)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("document", "needed"), MATRIX)
async def test_the_role_matrix_over_both_protocols(
    secured: Secured, protocol: str, role: Role, document: str, needed: Role
) -> None:
    async with subscription_client(
        secured.server.ws_url, protocol, init_payload=secured.bearer(role)
    ) as client:
        await client.subscribe("1", document, {"id": secured.job_id})
        if role.allows(needed) and protocol == LEGACY_WS:
            # Past the role check, Strawberry's legacy handler runs subscriptions only.
            refused = await client.receive()
            assert refused["payload"] == {"message": "mutations are not allowed"}
            return
        if role.allows(needed):
            data = await client.next_data()
            assert next(iter(data.values()))["errors"] == []
            return
        code, reason = await client.closed()
    assert code == 4403
    assert f"needs the {needed} role" in reason
    assert await _job_state(secured) == "ACTIVE"  # neither resumed-from-pause nor deleted
