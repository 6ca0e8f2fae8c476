"""The Host check (DNS rebinding), CORS and the websocket Origin check, on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gql_scheduler.settings import SettingsError, load_settings
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.ws_client import TRANSPORT_WS, subscription_client

pytestmark = pytest.mark.timeout(60)

QUERY = {"query": "{ jobs(first: 1) { totalCount } }"}
APP_ORIGIN = "https://app.example.com"


@pytest.fixture
async def server(tmp_path: Any, request: pytest.FixtureRequest) -> AsyncIterator[LiveServer]:
    overrides = getattr(request, "param", {})
    url = f"sqlite+aiosqlite:///{tmp_path}/edge.db"
    from gql_scheduler.store import migrations

    await asyncio.to_thread(migrations.upgrade, url)
    async with live_server(settings_for(url, **overrides)) as running:
        yield running


async def test_a_request_for_another_host_is_refused(server: LiveServer) -> None:
    for method, path in (("POST", "/graphql"), ("GET", "/graphql")):
        response = await server.http.request(
            method, path, json=QUERY, headers={"Host": "rebound.example"}
        )
        assert response.status_code == 400, (method, path)
        assert "totalCount" not in response.text


async def test_the_loopback_names_are_hosts_of_the_service(server: LiveServer) -> None:
    port = server.base_url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", "localhost", f"localhost:{port}", f"127.0.0.1:{port}"):
        response = await server.http.post("/graphql", json=QUERY, headers={"Host": host})
        assert response.status_code == 200, host


async def test_health_probes_answer_whatever_the_host(server: LiveServer) -> None:
    response = await server.http.get("/healthz", headers={"Host": "10.4.0.17:8000"})
    assert response.status_code == 200


async def test_a_websocket_for_another_host_is_refused(server: LiveServer) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(10):
            # The URL names the host (its Host header); the connection goes to 127.0.0.1.
            await connect(
                f"ws://rebound.example:{port}/graphql",
                subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
                host="127.0.0.1",
                port=port,
            )
    assert refused.value.response.status_code == 400


@pytest.mark.parametrize(
    "server", [{"allowed_hosts": "scheduler.internal, *.ops.example"}], indirect=True
)
async def test_listed_hosts_and_subdomains_are_accepted_and_nothing_else(
    server: LiveServer,
) -> None:
    for host, status in (
        ("scheduler.internal", 200),
        ("eu.ops.example", 200),
        ("ops.example.evil", 400),
        ("127.0.0.1", 400),  # a list replaces the defaults
    ):
        response = await server.http.post("/graphql", json=QUERY, headers={"Host": host})
        assert response.status_code == status, host


async def test_by_default_no_other_origin_gets_cors_headers(server: LiveServer) -> None:
    preflight = await _preflight(server, APP_ORIGIN)
    assert "access-control-allow-origin" not in preflight.headers
    response = await server.http.post("/graphql", json=QUERY, headers={"Origin": APP_ORIGIN})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("server", [{"cors_origins": APP_ORIGIN}], indirect=True)
async def test_a_listed_origin_may_call_with_a_key(server: LiveServer) -> None:
    preflight = await _preflight(server, APP_ORIGIN)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in preflight.headers  # keys, not cookies
    response = await server.http.post("/graphql", json=QUERY, headers={"Origin": APP_ORIGIN})
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN

    other = await _preflight(server, "https://evil.example")
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("server", [{"cors_origins": APP_ORIGIN}], indirect=True)
async def test_websockets_follow_the_same_origin_list(server: LiveServer) -> None:
    async with subscription_client(server.ws_url, additional_headers={"Origin": APP_ORIGIN}):
        pass
    own = server.base_url  # a page of the service itself
    async with subscription_client(server.ws_url, additional_headers={"Origin": own}):
        pass
    async with subscription_client(server.ws_url):  # no Origin: not a browser
        pass
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(10):
            await connect(
                server.ws_url,
                subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
                additional_headers={"Origin": "https://evil.example"},
            )
    assert refused.value.response.status_code == 403


async def test_by_default_a_websocket_from_another_origin_is_refused(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus):
        async with asyncio.timeout(10):
            await connect(
                server.ws_url,
                subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
                additional_headers={"Origin": APP_ORIGIN},
            )


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"cors_origins": "*"}, "'*' (any origin) is allowed only with authentication"),
        ({"cors_origins": "*", "auth": "disabled"}, "GQL_SCHEDULER_CORS_ORIGINS"),
        ({"cors_origins": "https://app.example.com/path"}, "is not an origin"),
        ({"cors_origins": "app.example.com"}, "is not an origin"),
    ],
)
def test_bad_origin_settings_stop_start_up_with_one_line(
    variables: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, **variables)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_any_origin_with_auth_required_is_allowed() -> None:
    settings = load_settings(_env_file=None, cors_origins="*", auth="required")
    assert settings.cors_origin_list == ["*"]


async def _preflight(server: LiveServer, origin: str) -> Any:
    return await server.http.options(
        "/graphql",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
