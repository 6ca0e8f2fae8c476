"""While the database is unreachable the API says so (UNAVAILABLE), fast, without a masked
internal error or a traceback per request, and works again as soon as it is back."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests import queries
from tests.engine_helpers import poll
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(90)

QUERY = "{ jobs(first: 5) { totalCount } }"


async def post(server: LiveServer, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = await server.http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite has no network path to cut
@pytest.mark.parametrize("fault", ["cut", "stall"])
async def test_requests_fail_fast_with_unavailable_and_recover(
    behind_a_proxy: tuple[LiveServer, TcpProxy], caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    server, proxy = behind_a_proxy
    assert "errors" not in await post(server, QUERY)
    # Refused at once, or silent (then the API's connect and statement timeouts answer).
    await (proxy.cut() if fault == "cut" else proxy.stall())
    create = {"input": queries.job_input("during-the-outage")}
    for document, variables in ((QUERY, None), (queries.CREATE_JOB, create)):
        body = await post(server, document, variables)
        [error] = body["errors"]
        assert error["extensions"] == {"code": "UNAVAILABLE"}, error
        assert "database is unavailable" in error["message"]
    refused = [r for r in caplog.records if getattr(r, "action", None) == "resolver_failed"]
    assert refused == []  # no masked internal error, no traceback per request

    await proxy.restore()

    async def answered() -> Any:
        return await post(server, QUERY)

    body = await poll(answered, lambda seen: "errors" not in seen, within=30)
    assert body["data"]["jobs"]["totalCount"] == 0  # the refused createJob stored nothing
    assert logging.ERROR not in {r.levelno for r in caplog.records if r.name == "gql_scheduler.api"}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_locked_sqlite_file_refuses_writes_as_unavailable(database_url: str) -> None:
    import asyncio
    import sqlite3

    from sqlalchemy.engine import make_url

    path = make_url(database_url).database
    assert path is not None
    async with live_server(settings_for(database_url)) as server:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            # Another process's long write: SQLite's one writer lock is taken.
            await asyncio.to_thread(holder.execute, "BEGIN EXCLUSIVE")
            create = {"input": queries.job_input("while-locked")}
            body = await post(server, queries.CREATE_JOB, create)
            [error] = body["errors"]
            assert error["extensions"] == {"code": "UNAVAILABLE"}, error
            assert "errors" not in await post(server, QUERY)  # reads go on (WAL)
        finally:
            await asyncio.to_thread(holder.execute, "ROLLBACK")
            holder.close()
        body = await post(server, queries.CREATE_JOB, create)
        assert body["data"]["createJob"]["errors"] == []


def test_only_errors_of_reaching_the_database_count_as_unavailable() -> None:
    import sqlite3

    import sqlalchemy as sa

    from gql_scheduler.store.outages import is_unreachable

    def operational(message: str) -> sa.exc.OperationalError:
        return sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))

    assert is_unreachable(ConnectionRefusedError(111, "Connect call failed"))
    assert is_unreachable(operational("database is locked"))
    assert is_unreachable(operational("attempt to write a readonly database"))
    assert is_unreachable(operational("database or disk is full"))
    assert not is_unreachable(operational("no such table: executions"))  # a bug
    assert not is_unreachable(ValueError("a bug"))
    assert is_unreachable(sqlite3.OperationalError("database or disk is full"))  # raw, too


def test_a_read_does_not_end_an_outage_of_writes_only() -> None:
    import sqlite3

    from gql_scheduler.store.outages import OutageLog

    log = OutageLog(logging.getLogger("test.outages"))
    log.failed("claiming", sqlite3.OperationalError("database or disk is full"))
    log.succeeded(wrote=False)  # a full disk still reads
    assert log.down
    assert "disk is full" in log.reason
    log.succeeded()
    assert not log.down

    log.failed("claiming", ConnectionRefusedError(111, "Connect call failed"))
    log.succeeded(wrote=False)  # a server that answers a read is back
    assert not log.down
