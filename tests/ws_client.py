"""A GraphQL websocket client for both protocols, as a dashboard would use them.

graphql-transport-ws (subscribe / next / error / complete, ping-pong) and the legacy
graphql-ws (start / data / error / complete, "ka" keep-alives). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.uri import parse_uri

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]
WAIT = 10.0


class SubscriptionClient:
    def __init__(self, socket: ClientConnection, protocol: str) -> None:
        self.socket = socket
        self.protocol = protocol
        self.keepalives = 0

    async def init(self, payload: dict[str, Any] | None = None) -> None:
        await self.send_init(payload)
        message = await self._receive_raw()
        assert message["type"] == "connection_ack", message

    async def send_init(self, payload: dict[str, Any] | None = None) -> None:
        await self._send({"type": "connection_init", "payload": payload or {}})

    async def closed(self, within: float = WAIT) -> tuple[int | None, str]:
        """The close code and reason, once the server has closed the connection; what
        came before (acks, errors, keep-alives) is skipped."""
        async with asyncio.timeout(within):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.socket.recv()
        return self.socket.close_code, self.socket.close_reason or ""

    async def subscribe(
        self, operation_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}}
        await self._send({"id": operation_id, "type": kind, "payload": payload})

    async def stop(self, operation_id: str) -> None:
        kind = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self._send({"id": operation_id, "type": kind})

    async def receive(self, within: float = WAIT) -> dict[str, Any]:
        """The next operation message as {"id", "type": next|error|complete, "payload"}."""
        async with asyncio.timeout(within):
            while True:
                message = await self._receive_raw()
                kind = message["type"]
                if kind == "ping":
                    self.keepalives += 1
                    await self._send({"type": "pong"})
                    continue
                if kind in ("ka", "pong"):
                    self.keepalives += 1
                    continue
                if kind == "data":
                    message["type"] = "next"
                return message

    async def wait_for_keepalives(self, count: int, within: float = WAIT) -> None:
        """Until `count` keep-alives have come; any operation message meanwhile fails."""
        async with asyncio.timeout(within):
            while self.keepalives < count:
                message = await self._receive_raw()
                kind = message["type"]
                assert kind in ("ping", "ka", "pong"), message
                self.keepalives += 1
                if kind == "ping":
                    await self._send({"type": "pong"})

    async def next_data(self, within: float = WAIT) -> dict[str, Any]:
        """The data of the next result; fails on anything else."""
        message = await self.receive(within)
        assert message["type"] == "next", message
        assert not message["payload"].get("errors"), message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def collect(self, count: int, within: float = WAIT) -> list[dict[str, Any]]:
        return [await self.next_data(within) for _ in range(count)]

    async def _send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def _receive_raw(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.socket.recv())
        return message


@asynccontextmanager
async def subscription_client(
    url: str,
    protocol: str = TRANSPORT_WS,
    *,
    init_payload: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[SubscriptionClient]:
    async with raw_connection(url, protocol, **options) as client:
        await client.init(init_payload)
        yield client


@asynccontextmanager
async def raw_connection(
    url: str, protocol: str = TRANSPORT_WS, **options: Any
) -> AsyncIterator[SubscriptionClient]:
    """Connected, but not initialised: the test sends connection_init itself."""
    async with asyncio.timeout(WAIT):
        socket = await connect(url, subprotocols=[protocol], open_timeout=WAIT, **options)  # type: ignore[list-item]
    try:
        yield SubscriptionClient(socket, protocol)
    finally:
        async with asyncio.timeout(WAIT):
            await socket.close()


class StuckSubscriber:
    """A subscriber that subscribes, then never reads again: a frozen browser tab.

    Raw socket and websockets' sans-I/O protocol, so nothing reads in the background; the
    receive buffer is made small so that the server's sends soon have nowhere to go.
    """

    def __init__(self, url: str, query: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url), subprotocols=[TRANSPORT_WS])  # type: ignore[list-item]
        self.url = url
        self.query = query
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        uri = parse_uri(self.url)
        self.sock.setblocking(False)
        async with asyncio.timeout(WAIT):
            await loop.sock_connect(self.sock, (uri.host, uri.port))
            self.protocol.send_request(self.protocol.connect())
            await self._flush()
            while self.protocol.handshake_exc is None and not self._open():
                self.protocol.receive_data(await loop.sock_recv(self.sock, 4096))
            if self.protocol.handshake_exc is not None:
                raise self.protocol.handshake_exc
            for message in (
                {"type": "connection_init", "payload": {}},
                {"id": "1", "type": "subscribe", "payload": {"query": self.query}},
            ):
                self.protocol.send_text(json.dumps(message).encode())
            await self._flush()

    def _open(self) -> bool:
        return self.protocol.state is State.OPEN

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        for chunk in self.protocol.data_to_send():
            await loop.sock_sendall(self.sock, chunk)

    async def read_until_closed(self) -> tuple[int | None, str]:
        """Read at last: (close code, reason) the server sent, or (None, "") if it hung up."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT * 3):
            while True:
                data = await loop.sock_recv(self.sock, 65536)
                if not data:
                    return None, ""
                self.protocol.receive_data(data)
                self.protocol.events_received()
                if self.protocol.close_rcvd is not None:
                    return self.protocol.close_rcvd.code, self.protocol.close_rcvd.reason

    def close(self) -> None:
        self.sock.close()
