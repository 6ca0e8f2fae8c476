"""The server around the schema: DataLoaders, GraphiQL, /healthz, health, and the SDL file."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from graphql import build_schema, find_breaking_changes
from sqlalchemy import event

from gql_scheduler.api.schema import export_sdl
from gql_scheduler.domain.executions import ExecutionStatus
from gql_scheduler.store.database import Database
from tests import queries
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.store_probe import insert_execution

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT.parent / "shared" / "design" / "API.graphql"

LIST_WITH_LAST_EXECUTION = """
query {
  jobs(first: 100) { edges { node { name lastExecution { id status jobId job { name } } } } }
}
"""


# Set while a test's own requests run. httpx's ASGI transport runs the app in the caller's
# task, so the request and the tasks it starts (DataLoader batches) see it; the service's
# background loops (sweeps, reconcile, the feed's poll) started earlier and do not.
_COUNTING: contextvars.ContextVar[bool] = contextvars.ContextVar("counting", default=False)


@contextmanager
def counted_statements(database: Database) -> Iterator[list[str]]:
    """The statements the requests made inside the block sent, and no one else's."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # SQLAlchemy runs this in a greenlet that carries its caller's context.
        if _COUNTING.get():
            statements.append(statement)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    token = _COUNTING.set(True)
    try:
        yield statements
    finally:
        _COUNTING.reset(token)
        event.remove(engine, "before_cursor_execute", record)


async def add_jobs_with_history(client: GraphQLClient, count: int, offset: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(offset, offset + count):
        data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(f"j{index:03d}")})
        job_id = data["createJob"]["job"]["id"]
        database = client.container.database
        await insert_execution(database, job_id, start, status=ExecutionStatus.FAILED)
        await insert_execution(database, job_id, start + timedelta(minutes=1))


async def test_listing_jobs_with_last_execution_is_not_n_plus_one(client: GraphQLClient) -> None:
    await add_jobs_with_history(client, 3, offset=0)
    with counted_statements(client.container.api_database) as few:
        small = await client.data(LIST_WITH_LAST_EXECUTION)
    await add_jobs_with_history(client, 37, offset=3)
    with counted_statements(client.container.api_database) as many:
        large = await client.data(LIST_WITH_LAST_EXECUTION)
    nodes = [edge["node"] for edge in large["jobs"]["edges"]]
    assert (len(nodes), len(small["jobs"]["edges"])) == (40, 3)
    # The newest execution of each job, and the job behind it, each batched in one query.
    assert all(node["lastExecution"]["status"] == "SUCCEEDED" for node in nodes)
    assert all(node["lastExecution"]["job"]["name"] == node["name"] for node in nodes)
    assert len(many) == len(few)


async def test_job_executions_connection(client: GraphQLClient) -> None:
    data = await client.data(queries.CREATE_JOB, {"input": queries.job_input()})
    job_id = data["createJob"]["job"]["id"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for minute in range(5):
        status = ExecutionStatus.FAILED if minute % 2 else ExecutionStatus.SUCCEEDED
        await insert_execution(
            client.container.database, job_id, start + timedelta(minutes=minute), status=status
        )
    query = """query($id: ID, $after: String) { job(id: $id) {
      executions(first: 2, after: $after, statuses: [SUCCEEDED]) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node { scheduledFor status } } } } }"""
    first = (await client.data(query, {"id": job_id}))["job"]["executions"]
    assert first["totalCount"] == 3
    assert [edge["node"]["scheduledFor"] for edge in first["edges"]] == [
        "2026-01-01T00:04:00Z",
        "2026-01-01T00:02:00Z",
    ]
    after = first["pageInfo"]["endCursor"]
    second = (await client.data(query, {"id": job_id, "after": after}))["job"]["executions"]
    assert [edge["node"]["scheduledFor"] for edge in second["edges"]] == ["2026-01-01T00:00:00Z"]
    assert second["pageInfo"]["hasNextPage"] is False


async def test_execution_outlives_its_job(client: GraphQLClient) -> None:
    data = await client.data(queries.CREATE_JOB, {"input": queries.job_input()})
    job_id = data["createJob"]["job"]["id"]
    execution_id = await insert_execution(
        client.container.database, job_id, datetime(2026, 1, 1, tzinfo=UTC)
    )
    await client.data(queries.DELETE_JOB, {"id": job_id})
    query = "query($id: ID!) { execution(id: $id) { id jobId job { id } status } }"
    execution = (await client.data(query, {"id": str(execution_id)}))["execution"]
    assert execution == {
        "id": str(execution_id),
        "jobId": job_id,
        "job": None,
        "status": "SUCCEEDED",
    }
    assert (await client.data(query, {"id": "999999"}))["execution"] is None
    assert (await client.data(query, {"id": "not-a-number"}))["execution"] is None


async def test_health_and_healthz(client: GraphQLClient) -> None:
    await client.data(queries.CREATE_JOB, {"input": queries.job_input(paused=True)})
    await client.data(queries.CREATE_JOB, {"input": queries.job_input("active")})
    health = (
        await client.data(
            "{ health { status version instance database schedulerRunning activeJobs "
            "runningExecutions } }"
        )
    )["health"]
    assert health["status"] == "ok"
    assert health["instance"] == "test-instance"
    assert health["database"] is True
    assert health["schedulerRunning"] is True
    assert health["activeJobs"] == 1
    assert health["runningExecutions"] == 0
    response = await client.http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_graphiql_is_served_and_can_be_switched_off(database_url: str) -> None:
    html = {"Accept": "text/html"}
    async with running_client(settings_for(database_url)) as client:
        page = await client.http.get("/graphql", headers=html)
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()
    async with running_client(settings_for(database_url, graphiql=False)) as client:
        page = await client.http.get("/graphql", headers=html)
        assert page.status_code == 404
        # The API itself still answers.
        assert (await client.data("{ health { status } }"))["health"]["status"] == "ok"


def test_schema_file_is_current() -> None:
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert committed == export_sdl(), (
        "schema.graphql is stale: run `gql-scheduler export-schema --output schema.graphql`"
    )


def test_schema_keeps_the_contract() -> None:
    if not CONTRACT.exists():
        pytest.skip("the design folder is not beside this checkout")
    contract = build_schema(CONTRACT.read_text(encoding="utf-8"))
    ours = build_schema(export_sdl())
    breaking = [change.description for change in find_breaking_changes(contract, ours)]
    assert breaking == []


async def test_parsing_and_validation_are_cached(client: GraphQLClient) -> None:
    from strawberry.extensions.parser_cache import _get_parse_cache
    from strawberry.extensions.validation_cache import _get_validate_cache

    from gql_scheduler.api.schema import CACHED_DOCUMENTS

    parse_cache = _get_parse_cache(CACHED_DOCUMENTS)
    validate_cache = _get_validate_cache(CACHED_DOCUMENTS)
    query = "{ health { status activeJobs } jobs(first: 3) { totalCount } }"
    await client.data(query)
    parsed, validated = parse_cache.cache_info().hits, validate_cache.cache_info().hits
    for _ in range(3):
        await client.data(query)
    assert parse_cache.cache_info().hits == parsed + 3
    assert validate_cache.cache_info().hits == validated + 3
