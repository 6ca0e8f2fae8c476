"""The subscribers of `bench fanout`, in a process of their own.

Load generators must not share the event loop (or the core) of the server they measure, as
no real client does. `python -m gql_scheduler.bench.subscribers URL COUNT EVENTS OUTPUT
[--graphql]` connects COUNT websocket clients, prints "ready" once all are connected (and
subscribed, with --graphql), receives until every client has EVENTS events or the deadline
passes, and writes each receipt (client, event id, time.monotonic()) to OUTPUT as JSON.
CLOCK_MONOTONIC is one clock for every process of the machine, so the parent can subtract
its publish times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

SUBSCRIPTION = "subscription { executionEvents { id type at execution { id status jobId } } }"
OPERATION_ID = "1"
TRANSPORT_WS = Subprotocol("graphql-transport-ws")
CONNECTING = 8  # handshakes in flight at once, so that the listen backlog never overflows
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


@dataclass(eq=False, slots=True)
class Client:
    socket: ClientConnection
    seen: dict[int, float] = field(default_factory=dict)
    duplicated: int = 0
    task: asyncio.Task[None] | None = None


def event_id_of(message: dict[str, Any]) -> int | None:
    """The event id of a "next" message, from either endpoint's payload."""
    if message.get("type") != "next":
        return None
    return int(message["payload"]["data"]["executionEvents"]["id"])


async def _receive(client: Client, wanted: int, everyone_done: asyncio.Event) -> None:
    seen = client.seen
    with contextlib.suppress(ConnectionClosed):
        async for raw in client.socket:
            received = time.monotonic()
            message = json.loads(raw)
            if message.get("type") == "ping":
                await client.socket.send('{"type": "pong"}')
                continue
            event_id = event_id_of(message)
            if event_id is None:
                continue
            if event_id in seen:
                client.duplicated += 1
            else:
                seen[event_id] = received
            if len(seen) >= wanted:
                everyone_done.set()  # checked by the waiter against all clients


# The API key the subscribers present, if the bench runs the service with auth on (from the
# environment, not the command line, where other users of the machine could read it).
KEY_VARIABLE = "GQL_SCHEDULER_BENCH_API_KEY"


async def _subscribe(socket: ClientConnection) -> None:
    """graphql-transport-ws: init (with the key, if any), wait for the ack, subscribe."""
    secret = os.environ.get(KEY_VARIABLE)
    init = {"Authorization": f"Bearer {secret}"} if secret else {}
    await socket.send(json.dumps({"type": "connection_init", "payload": init}))
    acknowledged = json.loads(await socket.recv())
    if acknowledged.get("type") != "connection_ack":
        raise RuntimeError(f"expected connection_ack, got {acknowledged}")
    payload = {"query": SUBSCRIPTION, "variables": {}}
    await socket.send(json.dumps({"id": OPERATION_ID, "type": "subscribe", "payload": payload}))


async def _connect(url: str, count: int, graphql: bool) -> list[Client]:
    gate = asyncio.Semaphore(CONNECTING)
    clients: list[Client] = []

    async def one() -> None:
        async with gate:
            subprotocols = [TRANSPORT_WS] if graphql else None
            socket = await connect(url, subprotocols=subprotocols, ping_interval=None)
            clients.append(Client(socket))  # before the handshake: closed even if it fails
            if graphql:
                await _subscribe(socket)

    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await asyncio.gather(*(one() for _ in range(count)))
    except BaseException:
        await _close(clients)
        raise
    return clients


async def _close(clients: list[Client]) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STOP_TIMEOUT):
            await asyncio.gather(*(c.socket.close() for c in clients), return_exceptions=True)
    tasks = [client.task for client in clients if client.task is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _wait_for_all(clients: list[Client], wanted: int, deadline: float) -> None:
    done = asyncio.Event()
    for client in clients:
        client.task = asyncio.create_task(_receive(client, wanted, done))
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(deadline):
            while not all(len(client.seen) >= wanted for client in clients):
                done.clear()
                await done.wait()


async def run(url: str, count: int, wanted: int, deadline: float, graphql: bool) -> dict[str, Any]:
    clients = await _connect(url, count, graphql)
    try:
        await _wait_for_all(clients, wanted, deadline)
    finally:
        await _close(clients)
    return {
        "receipts": [
            [index, event_id, at]
            for index, client in enumerate(clients)
            for event_id, at in client.seen.items()
        ],
        "duplicated": sum(client.duplicated for client in clients),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gql_scheduler.bench.subscribers")
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("events", type=int)
    parser.add_argument("output", type=Path)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--graphql", action="store_true")
    arguments = parser.parse_args(argv)
    result = asyncio.run(
        run(arguments.url, arguments.count, arguments.events, arguments.deadline, arguments.graphql)
    )
    arguments.output.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
