"""Request limits and protocol errors over HTTP: each limit answers with a coded GraphQL
error naming it, every malformed request with a JSON 4xx, and nothing runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests import queries
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.live_server import LiveServer, live_server
from tests.store_probe import table_counts

SMALL_LIMITS: dict[str, Any] = {
    "max_query_depth": 4,
    "max_query_aliases": 3,
    "max_query_tokens": 200,
    "max_query_bytes": 2000,
    "max_query_cost": 500,
    "max_request_bytes": 4096,
}
WAIT = 10.0


@pytest.fixture
def backend() -> str:
    """Limits do not depend on the store: SQLite only."""
    return "sqlite"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[GraphQLClient]:
    async with running_client(settings_for(database_url, **SMALL_LIMITS)) as graphql_client:
        yield graphql_client


@pytest.fixture
async def default_client(database_url: str) -> AsyncIterator[GraphQLClient]:
    async with running_client(settings_for(database_url)) as graphql_client:
        yield graphql_client


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(settings_for(database_url, **SMALL_LIMITS)) as running:
        yield running


def refused_by(body: dict[str, Any], limit: str) -> dict[str, Any]:
    """The one error of a refused request, which must name `limit`; nothing ran."""
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST", error
    assert error["extensions"]["limit"] == limit, error
    return dict(error)


DEEP = "{ jobs { edges { node { lastExecution { job { name } } } } } }"  # 5 levels
ALIASED = "{ a: health { status } b: health { status } c: health { status } d: health { status } }"
MANY_TOKENS = "{ " + "health { status } " * 60 + "}"
LONG = "{ health { status } }" + " " * 2000
# 50 + 100 x (1 + (1 + 20 + 1)): Job.stats is one read per row.
COSTLY = "query($n: Int) { jobs(first: $n) { edges { node { id stats { total } } } } }"
COSTLY_LITERAL = "{ jobs(first: 100) { edges { node { id stats { total } } } } }"


@pytest.mark.parametrize(
    ("query", "limit"),
    [
        pytest.param(DEEP, "maxQueryDepth", id="depth"),
        pytest.param(ALIASED, "maxQueryAliases", id="aliases"),
        pytest.param(MANY_TOKENS, "maxQueryTokens", id="tokens"),
        pytest.param(LONG, "maxQueryBytes", id="document-bytes"),
        pytest.param(COSTLY_LITERAL, "maxQueryCost", id="cost"),
    ],
)
async def test_a_document_over_a_limit_is_refused_naming_it(
    client: GraphQLClient, query: str, limit: str
) -> None:
    refused_by(await client.execute(query), limit)


async def test_cost_reads_page_sizes_from_the_variables(client: GraphQLClient) -> None:
    small = await client.execute(COSTLY, {"n": 5})
    assert "errors" not in small, small
    error = refused_by(await client.execute(COSTLY, {"n": 100}), "maxQueryCost")
    assert error["extensions"]["cost"] > SMALL_LIMITS["max_query_cost"]


async def test_a_mutation_over_a_limit_changes_nothing(client: GraphQLClient) -> None:
    before = await table_counts(client.container.database)
    creates = " ".join(f"{alias}: createJob(input: $input) {{ job {{ id }} }}" for alias in "abcd")
    mutation = f"mutation($input: CreateJobInput!) {{ {creates} }}"
    refused_by(await client.execute(mutation, {"input": queries.job_input()}), "maxQueryAliases")
    assert await table_counts(client.container.database) == before


async def test_batches_are_refused_as_a_json_error(client: GraphQLClient) -> None:
    response = await client.http.post("/graphql", json=[{"query": "{ health { status } }"}] * 2)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "batching" in error["message"].lower()


def test_the_page_size_cap_is_in_the_schema() -> None:
    from gql_scheduler.api.schema import export_sdl

    assert '"""Page size, 1 to 500; it multiplies the query\'s cost."""' in export_sdl()


# ---------------------------------------------------------------- protocol errors


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"query": 5}', id="query-not-a-string"),
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b'{"query": "{ health { status } }\xff"}', id="invalid-utf8"),
        pytest.param(b"{}", id="missing-query"),
        pytest.param(b"5", id="not-an-object"),
        pytest.param(b'{"query": "{ health { status } }", "variables": 5}', id="variables"),
        pytest.param(b"[" * 1500 + b"]" * 1500, id="nested-past-recursion"),
        pytest.param(b'{"query": "{ health { status } }", "x": ' + b"9" * 4500 + b"}", id="digits"),
    ],
)
async def test_a_malformed_request_gets_a_json_4xx(
    default_client: GraphQLClient, body: bytes
) -> None:
    headers = {"content-type": "application/json"}
    response = await default_client.http.post("/graphql", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    (error,) = response.json()["errors"]
    assert error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("query", "operation_name", "says"),
    [
        ("query A { health { status } }", "B", 'Unknown operation named "B"'),
        ("query A { health { status } } query B { health { status } }", None, "operationName"),
    ],
)
async def test_an_operation_that_cannot_be_chosen_is_an_error(
    client: GraphQLClient, query: str, operation_name: str | None, says: str
) -> None:
    payload = {"query": query, "operationName": operation_name}
    response = await client.http.post("/graphql", json=payload)
    body = response.json()
    assert body["data"] is None
    (error,) = body["errors"]
    assert says in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


async def test_a_subscription_over_http_is_refused_clearly(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.http.post(
        "/graphql", json={"query": "subscription { jobEvents { id } }"}
    )
    body = response.json()
    assert body["data"] is None
    (error,) = body["errors"]
    assert "served over websockets" in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # not taken for a bug


# ---------------------------------------------------------------- request body


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    server: LiveServer,
) -> None:
    """Only the headers are sent: the answer comes without the server waiting for a body."""
    head = (
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {20 * 1024 * 1024}\r\n\r\n"
    )
    status, body = await _exchange(server, head.encode(), b"")
    assert status == 413
    refused_by(body, "maxRequestBytes")


async def test_a_streamed_body_is_refused_once_past_the_limit(server: LiveServer) -> None:
    """A chunked body that never ends: only a server counting as it reads can answer."""
    head = (
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b'{"query": "' + b" " * 1000
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6))
    status, body = await _exchange(server, head.encode(), chunks)
    assert status == 413
    refused_by(body, "maxRequestBytes")


async def _exchange(server: LiveServer, head: bytes, body: bytes) -> tuple[int, dict[str, Any]]:
    """Send `head` and `body` (never finished), then read one response."""
    host, port = server.base_url.removeprefix("http://").split(":")
    async with asyncio.timeout(WAIT):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(head + body)
            await writer.drain()
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            content = await reader.readexactly(int(headers["content-length"]))
        finally:
            writer.close()
    return int(status_line.split()[1]), json.loads(content)
