"""executionOutput: a running shell's lines as they are printed; kept output once finished."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.test_subscriptions import create_job, trigger
from tests.ws_client import PROTOCOLS, SubscriptionClient, subscription_client

OUTPUT = """
subscription($id: ID!) { executionOutput(executionId: $id) { executionId seq stream text } }
"""
STATUS = "query($id: ID!) { execution(id: $id) { status output } }"
# Prints a line, then waits for a file the test creates once it has seen that line live.
PROGRAM = """
import os, sys, time
print("first line", flush=True)
print("to stderr", file=sys.stderr, flush=True)
deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
print("last line", flush=True)
"""


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(settings_for(database_url, enable_shell=True)) as running:
        yield running


async def _chunks_until_complete(client: SubscriptionClient) -> list[dict[str, str]]:
    chunks = []
    while True:
        message = await client.receive()
        if message["type"] == "complete":
            return chunks
        assert message["type"] == "next", message
        chunks.append(message["payload"]["data"]["executionOutput"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_output_streams_while_the_execution_runs(
    server: LiveServer, protocol: str, tmp_path: object
) -> None:
    release = f"{tmp_path}/release"
    command = [sys.executable, "-c", PROGRAM, release]
    job_id = await create_job(server, "printer", action={"shell": {"command": command}})
    execution_id = await trigger(server, job_id)
    async with subscription_client(server.ws_url, protocol) as client:
        await client.subscribe("1", OUTPUT, {"id": execution_id})
        first = (await client.next_data())["executionOutput"]
        second = (await client.next_data())["executionOutput"]
        # Seen live: the program is still waiting for the release file.
        status = await server.data(STATUS, {"id": execution_id})
        assert status["execution"]["status"] == "RUNNING"
        await asyncio.to_thread(Path(release).touch)
        rest = await _chunks_until_complete(client)
    chunks = [first, second, *rest]
    assert [chunk["seq"] for chunk in chunks] == list(range(len(chunks)))
    assert {chunk["executionId"] for chunk in chunks} == {execution_id}
    by_stream = {(chunk["stream"], chunk["text"]) for chunk in chunks}
    assert by_stream == {
        ("STDOUT", "first line\n"),
        ("STDERR", "to stderr\n"),
        ("STDOUT", "last line\n"),
    }


async def test_a_finished_execution_sends_its_kept_output_and_completes(
    server: LiveServer,
) -> None:
    program = "print('one'); print('two')"
    command = [sys.executable, "-c", program]
    job_id = await create_job(server, "done", action={"shell": {"command": command}})
    execution_id = await trigger(server, job_id)
    from tests.engine_helpers import poll

    async def status() -> str:
        found = await server.data(STATUS, {"id": execution_id})
        return str(found["execution"]["status"])

    await poll(status, lambda seen: seen == "SUCCEEDED")
    async with subscription_client(server.ws_url) as client:
        await client.subscribe("1", OUTPUT, {"id": execution_id})
        chunks = await _chunks_until_complete(client)
    assert "".join(chunk["text"] for chunk in chunks) == "one\ntwo\n"


async def test_output_of_an_unknown_execution_is_a_not_found_error(server: LiveServer) -> None:
    async with subscription_client(server.ws_url) as client:
        await client.subscribe("1", OUTPUT, {"id": "987654"})
        message = await client.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["errorCode"] == "NOT_FOUND"
    assert errors[0]["extensions"]["field"] == ["executionId"]
