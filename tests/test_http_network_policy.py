"""The network policy of HTTP actions against real parts: the app, a real HTTP server on
127.0.0.1, real connections through the guarded client.

The policy has nothing to do with the store, so these run on SQLite only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from gql_scheduler.actions import guarded_transport
from gql_scheduler.actions.base import OutputStream, RunContext
from gql_scheduler.actions.http import HttpRunner
from gql_scheduler.actions.network_policy import DENY_SETTING, NetworkPolicy, parse_networks
from gql_scheduler.actions.output_collector import OutputCollector
from gql_scheduler.domain.actions import HttpAction, HttpMethod
from gql_scheduler.testing import FixedClock
from tests import databases, queries
from tests.engine_helpers import TRIGGER, create_job, wait_for
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.local_servers import RunningHttpServer, closed_port, http_server
from tests.store_probe import table_counts

pytestmark = pytest.mark.asyncio

LOOPBACK_DENIED = {"http_deny_networks": "127.0.0.0/8, ::1/128"}
START = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
CONTEXT = RunContext(
    execution_id="exec-1",
    job_id="job-1",
    job_name="ping",
    scheduled_for=START,
    attempt=1,
    idempotency_key="job-1:2025-01-01T03:00:00Z",
)


def collector() -> OutputCollector:
    return OutputCollector(limit_bytes=64 * 1024, now=FixedClock(START).now)


@pytest.fixture
def sqlite_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    template = request.getfixturevalue("sqlite_template")
    return databases.copy_sqlite_database(template, tmp_path / "test.db")


@pytest.fixture
async def web() -> AsyncIterator[RunningHttpServer]:
    async with http_server() as server:
        yield server


def port_of(server: RunningHttpServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def local_url(server: RunningHttpServer, host: str, path: str = "/ok") -> str:
    return f"http://{host}:{port_of(server)}{path}"


async def run_once(client: GraphQLClient, job_id: str) -> dict[str, Any]:
    await client.data(TRIGGER, {"id": job_id})
    runs = await wait_for(
        client, job_id, lambda seen: [run["status"] for run in seen] in (["SUCCEEDED"], ["FAILED"])
    )
    return runs[0]


def get(url: str) -> dict[str, Any]:
    return {"http": {"url": url, "method": "GET"}}


# ---------------------------------------------------------------- at run time, through the app


async def test_a_name_resolving_into_a_denied_network_fails_unsent(
    sqlite_url: str, web: RunningHttpServer
) -> None:
    async with running_client(settings_for(sqlite_url, **LOOPBACK_DENIED)) as client:
        # A host name passes validation: only the addresses it resolves to can be judged.
        job_id = await create_job(client, action=get(local_url(web, "localhost")))
        run = await run_once(client, job_id)
    assert run["status"] == "FAILED"
    assert run["resultCode"] is None
    assert run["error"] == (
        "refused: localhost resolves to 127.0.0.1, which is in a denied network"
        f" (127.0.0.0/8, {DENY_SETTING})"
    )
    assert web.recorder.requests == []


async def test_an_allowed_exception_reaches_the_same_server(
    sqlite_url: str, web: RunningHttpServer
) -> None:
    settings = settings_for(sqlite_url, **LOOPBACK_DENIED, http_allow_networks="127.0.0.1/32")
    async with running_client(settings) as client:
        job_id = await create_job(client, action=get(local_url(web, "localhost")))
        run = await run_once(client, job_id)
    assert (run["status"], run["resultCode"], run["output"]) == ("SUCCEEDED", 200, "ok")
    assert [request.path for request in web.recorder.requests] == ["/ok"]


async def test_a_job_saved_before_its_address_was_denied_fails_at_run_time(
    sqlite_url: str, web: RunningHttpServer
) -> None:
    async with running_client(settings_for(sqlite_url)) as client:
        job_id = await create_job(client, action=get(web.url("/ok")))
    async with running_client(settings_for(sqlite_url, **LOOPBACK_DENIED)) as client:
        run = await run_once(client, job_id)
    assert run["status"] == "FAILED"
    assert run["error"] == (
        f"refused: 127.0.0.1 is in a denied network (127.0.0.0/8, {DENY_SETTING})"
    )
    assert web.recorder.requests == []


async def test_a_redirect_is_the_result_and_is_not_followed(
    sqlite_url: str, web: RunningHttpServer
) -> None:
    # Redirects are not followed anywhere, so each connection is to the job's own URL; if
    # they ever were, the connection-level check would see every hop.
    async with running_client(settings_for(sqlite_url)) as client:
        job_id = await create_job(client, action=get(web.url("/redirect")))
        run = await run_once(client, job_id)
    assert (run["status"], run["resultCode"]) == ("FAILED", 302)
    assert run["error"] == "HTTP 302 Found"
    assert [request.path for request in web.recorder.requests] == ["/redirect"]


# ---------------------------------------------------------------- at run time, the runner


@pytest.fixture
async def loopback_denied() -> AsyncIterator[HttpRunner]:
    network = NetworkPolicy(denied=parse_networks(LOOPBACK_DENIED["http_deny_networks"]))
    async with guarded_transport.build_http_client(network) as client:
        yield HttpRunner(client)


@pytest.mark.parametrize(
    ("host", "error"),
    [
        # Stored before validation refused them: the C resolver reads them as 127.0.0.1.
        ("2130706433", "refused: '2130706433' is not a canonical address (it means 127.0.0.1)"),
        ("0x7f000001", "refused: '0x7f000001' is not a canonical address (it means 127.0.0.1)"),
        ("127.1", "refused: '127.1' is not a canonical address (it means 127.0.0.1)"),
        # IPv6 literals: loopback itself, and IPv4 loopback mapped into IPv6.
        ("[::1]", f"refused: ::1 is in a denied network (::1/128, {DENY_SETTING})"),
        ("[::ffff:127.0.0.1]", "(127.0.0.1) is in a denied network (127.0.0.0/8"),
        # The unspecified address would connect to loopback.
        ("0.0.0.0", "refused: 0.0.0.0 (127.0.0.1) is in a denied network (127.0.0.0/8"),
    ],
)
async def test_spellings_of_a_denied_address_are_refused_when_connecting(
    loopback_denied: HttpRunner, web: RunningHttpServer, host: str, error: str
) -> None:
    action = HttpAction(url=local_url(web, host), method=HttpMethod.GET)
    result = await loopback_denied.run(action, CONTEXT, collector())
    assert not result.succeeded
    assert result.error is not None
    assert result.error.startswith("refused: ")
    assert error in result.error
    assert "\n" not in result.error
    assert web.recorder.requests == []


class RecordingBackend(httpcore.AnyIOBackend):
    """A real backend that also records the host each connection was opened to."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, **options: Any) -> Any:
        self.hosts.append(host)
        return await super().connect_tcp(host, port, **options)


async def test_the_connection_goes_to_the_checked_address_not_the_name(
    web: RunningHttpServer,
) -> None:
    inner = RecordingBackend()
    backend = guarded_transport.GuardedBackend(NetworkPolicy(), inner)
    stream = await backend.connect_tcp("localhost", port_of(web))
    try:
        # Connecting by name would resolve again, and could get another (rebound) answer.
        assert inner.hosts == ["127.0.0.1"]
        assert stream.get_extra_info("server_addr")[0] == "127.0.0.1"
    finally:
        await stream.aclose()


async def test_a_refused_address_falls_back_to_the_next_one(
    monkeypatch: pytest.MonkeyPatch, web: RunningHttpServer
) -> None:
    # A name with two addresses: nothing listens on the first (127.0.0.2), the server is on
    # the second. The resolver is the one part replaced; both connections are real.
    async def two_addresses(host: str, port: int) -> list[str]:
        return ["127.0.0.2", "127.0.0.1"]

    monkeypatch.setattr(guarded_transport, "_resolve", two_addresses)
    inner = RecordingBackend()
    backend = guarded_transport.GuardedBackend(NetworkPolicy(), inner)
    stream = await backend.connect_tcp("two.example", port_of(web), timeout=10)
    try:
        assert inner.hosts == ["127.0.0.2", "127.0.0.1"]
        assert stream.get_extra_info("server_addr")[0] == "127.0.0.1"
    finally:
        await stream.aclose()


async def test_resolving_counts_against_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def never_answers(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(guarded_transport, "_resolve", never_answers)
    transport = guarded_transport.GuardedTransport(NetworkPolicy())
    timeout = httpx.Timeout(5, connect=0.2)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        action = HttpAction(url="http://slow-dns.example/", method=HttpMethod.GET)
        result = await HttpRunner(client).run(action, CONTEXT, collector())
    assert result.error == "connection timed out: connecting to slow-dns.example timed out"


async def test_a_name_that_does_not_resolve_is_a_connection_failure() -> None:
    async with guarded_transport.build_http_client(NetworkPolicy()) as client:
        runner = HttpRunner(client)
        action = HttpAction(url="http://no-such-host.invalid/", method=HttpMethod.GET)
        result = await runner.run(action, CONTEXT, collector())
    assert result.error is not None
    assert result.error.startswith("connection failed: ")


async def test_environment_proxies_are_ignored_and_said_so(
    monkeypatch: pytest.MonkeyPatch, web: RunningHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy would be the only connection checked; nothing listens at this one.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with caplog.at_level(logging.WARNING, logger="gql_scheduler.actions"):
        client = guarded_transport.build_http_client(NetworkPolicy())
    async with client:
        output = collector()
        action = HttpAction(url=web.url("/ok"), method=HttpMethod.GET)
        result = await HttpRunner(client).run(action, CONTEXT, output)
    assert (result.succeeded, output.text()) == (True, "ok")
    assert [getattr(record, "action", None) for record in caplog.records] == ["http_proxy_ignored"]
    assert [chunk.stream for chunk in output.chunks] == [OutputStream.STDOUT]


# ---------------------------------------------------------------- when saving a job

REFUSED_URLS = [
    pytest.param(
        "http://169.254.169.254/latest/meta-data/",
        f"refused: 169.254.169.254 is in a denied network (169.254.0.0/16, {DENY_SETTING})",
        id="metadata",
    ),
    pytest.param(
        "http://[fd00:ec2::254]/latest/meta-data/",
        f"refused: fd00:ec2::254 is in a denied network (fd00:ec2::254/128, {DENY_SETTING})",
        id="ipv6-metadata",
    ),
    pytest.param(
        "http://[::ffff:169.254.169.254]/",
        "(169.254.169.254) is in a denied network (169.254.0.0/16",
        id="ipv4-mapped",
    ),
    pytest.param("http://2130706433/", "'2130706433' is not a canonical address", id="integer"),
    pytest.param("http://0x7f000001/", "'0x7f000001' is not a canonical address", id="hex"),
    pytest.param("http://0177.0.0.1/", "'0177.0.0.1' is not a canonical address", id="octal"),
    pytest.param("http://127.1:8080/", "'127.1' is not a canonical address", id="short"),
    pytest.param("http://0x7f.0.1/x", "'0x7f.0.1' is not a canonical address", id="mixed"),
]


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
async def test_create_refuses_a_denied_or_obfuscated_address(
    sqlite_url: str, url: str, message: str
) -> None:
    # Allowing everything changes nothing for obfuscated spellings.
    permissive = {"http_allow_networks": "0.0.0.0/0, ::/0"} if "canonical" in message else {}
    async with running_client(settings_for(sqlite_url, **permissive)) as client:
        before = await table_counts(client.container.database)
        data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(action=get(url))})
        after = await table_counts(client.container.database)
    (error,) = data["createJob"]["errors"]
    assert (error["field"], error["code"]) == (["input", "action", "http", "url"], "INVALID")
    assert message in error["message"]
    assert data["createJob"]["job"] is None
    assert after == before


async def test_update_refuses_a_denied_address_and_changes_nothing(sqlite_url: str) -> None:
    async with running_client(settings_for(sqlite_url)) as client:
        job_id = await create_job(client, action=get("http://127.0.0.1:9/"))
        job = (await client.data(queries.JOB, {"id": job_id}))["job"]
        data = await client.data(
            queries.UPDATE_JOB,
            {"id": job_id, "input": {"action": get("http://169.254.169.254/")}},
        )
        assert (await client.data(queries.JOB, {"id": job_id}))["job"] == job
    (error,) = data["updateJob"]["errors"]
    assert (error["field"], error["code"]) == (["input", "action", "http", "url"], "INVALID")
    assert error["message"].startswith("refused: 169.254.169.254 is in a denied network")


async def test_create_accepts_an_address_the_allow_list_excepts(sqlite_url: str) -> None:
    settings = settings_for(sqlite_url, http_allow_networks="169.254.169.254")
    async with running_client(settings) as client:
        data = await client.data(
            queries.CREATE_JOB,
            {"input": queries.job_input(action=get("http://169.254.169.254/latest/"))},
        )
    assert data["createJob"]["errors"] == []
