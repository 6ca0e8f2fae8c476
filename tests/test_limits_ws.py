"""Request limits and protocol errors on both websocket protocols, fast lane included: each
refusal is an `error` message (never a bare `complete`, never silence) with code
BAD_REQUEST, naming the limit when a limit refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.engine_helpers import poll
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.ws_client import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, WAIT, subscription_client

LIMITS: dict[str, Any] = {
    "max_query_depth": 3,
    "max_query_aliases": 2,
    "max_query_tokens": 100,
    "max_query_bytes": 1000,
    "max_query_cost": 300,
    "max_subscriptions_per_connection": 2,
    "max_request_bytes": 4096,
    "ws_connection_init_timeout_seconds": 0.3,
    "ws_keepalive_seconds": 0,
}
JOB_EVENTS = "subscription { jobEvents { id type } }"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(settings_for(database_url, **LIMITS)) as running:
        yield running


def first_error(message: dict[str, Any]) -> dict[str, Any]:
    """The error of an `error` message: a list on transport-ws, one object on legacy."""
    assert message["type"] == "error", message
    payload = message["payload"]
    error: dict[str, Any] = payload[0] if isinstance(payload, list) else payload
    return error


async def refusal(server: LiveServer, protocol: str, payload: dict[str, Any]) -> dict[str, Any]:
    async with subscription_client(server.ws_url, protocol) as client:
        kind = "subscribe" if protocol == TRANSPORT_WS else "start"
        await client._send({"id": "1", "type": kind, "payload": payload})
        message = await client.receive()
        assert message["id"] == "1"
        error = first_error(message)
        # The connection is still usable: a good subscription starts on it.
        await client.subscribe("2", JOB_EVENTS)
        await _until_subscribers(server, 1)
        return error


async def _until_subscribers(server: LiveServer, count: int) -> None:
    """Wait (bounded) until the feed has exactly `count` subscriptions registered."""

    async def current() -> int:
        return server.container.feed.subscriber_count

    await poll(current, lambda seen: seen == count, within=WAIT)


DEEP = "subscription { jobEvents { job { lastExecution { job { name } } } } }"
ALIASED = "subscription { jobEvents { a: id b: id c: id } }"
MANY_TOKENS = "subscription { jobEvents { " + "id " * 100 + "} }"
LONG = JOB_EVENTS + " " * 1000
# Per event: 1 + (1 + 3 x 100): the page size multiplies even leaf lists.
COSTLY = (
    "subscription { jobEvents { job { upcomingRuns(count: 100) "
    "a: upcomingRuns(count: 100) b: upcomingRuns(count: 100) } } }"
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("query", "limit"),
    [
        pytest.param(DEEP, "maxQueryDepth", id="depth"),
        pytest.param(ALIASED, "maxQueryAliases", id="aliases"),
        pytest.param(MANY_TOKENS, "maxQueryTokens", id="tokens"),
        pytest.param(LONG, "maxQueryBytes", id="document-bytes"),
        pytest.param(COSTLY, "maxQueryCost", id="cost"),
    ],
)
async def test_a_subscription_over_a_limit_is_refused_naming_it(
    server: LiveServer, protocol: str, query: str, limit: str
) -> None:
    error = await refusal(server, protocol, {"query": query})
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["extensions"]["limit"] == limit


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("payload", "says"),
    [
        pytest.param({"query": "subscription { jobEvents { id "}, "Syntax Error", id="syntax"),
        pytest.param({"query": "subscription { nope }"}, "Cannot query field", id="validation"),
        pytest.param(
            {"query": "subscription A { jobEvents { id } }", "operationName": "B"},
            'Unknown operation named "B"',
            id="unknown-operation",
        ),
        pytest.param(
            {"query": "subscription A { jobEvents { id } } subscription B { jobEvents { id } }"},
            "operationName",
            id="several-operations",
        ),
    ],
)
async def test_a_subscription_that_cannot_run_gets_an_error_message(
    server: LiveServer, protocol: str, payload: dict[str, Any], says: str
) -> None:
    error = await refusal(server, protocol, payload)
    assert says in error["message"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_operations_per_connection_are_limited(server: LiveServer, protocol: str) -> None:
    async with subscription_client(server.ws_url, protocol) as client:
        await client.subscribe("1", JOB_EVENTS)
        await client.subscribe("2", JOB_EVENTS)
        await _until_subscribers(server, 2)
        await client.subscribe("3", JOB_EVENTS)
        message = await client.receive()
        assert message["id"] == "3"
        error = first_error(message)
        assert error["extensions"] == {
            "code": "BAD_REQUEST",
            "limit": "maxSubscriptionsPerConnection",
        }
        # Stopping one makes room again.
        await client.stop("1")
        await _until_subscribers(server, 1)
        await client.subscribe("4", JOB_EVENTS)
        await _until_subscribers(server, 2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_connection_without_init_is_closed(server: LiveServer, protocol: str) -> None:
    async with asyncio.timeout(WAIT):
        socket = await connect(server.ws_url, subprotocols=[protocol])  # type: ignore[list-item]
        try:
            received = await _read_until_closed(socket)
        finally:
            await socket.close()
    assert socket.close_code == 4408
    if protocol == LEGACY_WS:  # the legacy protocol can say why in a message first
        (message,) = received
        assert message["type"] == "connection_error"
        assert message["payload"]["extensions"] == {
            "code": "BAD_REQUEST",
            "limit": "wsConnectionInitTimeoutSeconds",
        }


async def _read_until_closed(socket: ClientConnection) -> list[dict[str, Any]]:
    received = []
    try:
        while True:
            received.append(json.loads(await socket.recv()))
    except ConnectionClosed:
        return received


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_websocket_message_over_the_body_limit_closes_the_socket(
    server: LiveServer, protocol: str
) -> None:
    async with subscription_client(server.ws_url, protocol) as client:
        kind = "subscribe" if protocol == TRANSPORT_WS else "start"
        query = JOB_EVENTS + " " * LIMITS["max_request_bytes"]
        await client._send({"id": "1", "type": kind, "payload": {"query": query}})
        async with asyncio.timeout(WAIT):
            with pytest.raises(ConnectionClosed):
                await client.socket.recv()
        assert client.socket.close_code == 1009  # message too big
