"""A TCP proxy on 127.0.0.1 that a test cuts and restores: a database that goes away.

The machine's PostgreSQL keeps running; only the path to it breaks. `cut()` closes every
connection through the proxy and refuses new ones (connect fails at once, as it does for a
server that is down); `stall()` keeps every connection open but passes nothing, as a
network that drops packets (no error, no reply); `restore()` lets them through again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

LOCALHOST = "127.0.0.1"
_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, LOCALHOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def stall(self) -> None:
        """Pass nothing more either way, and connect nothing new, until `restore()`."""
        self._flowing.clear()

    async def restore(self) -> None:
        """Listen again, on the same port, and pass what waited."""
        self._flowing.set()
        if self._server is None:
            await self.start()

    def url_for(self, database_url: str) -> str:
        """`database_url` with its host and port replaced by the proxy's."""
        url = make_url(database_url).set(host=LOCALHOST, port=self.port)
        return url.render_as_string(hide_password=False)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(_pipe(source, sink, self._flowing))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)
            pipe.add_done_callback(lambda _, sink=sink: self._writers.discard(sink))

    async def aclose(self) -> None:
        await self.cut()


async def _pipe(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    try:
        while data := await source.read(_CHUNK):
            await flowing.wait()
            sink.write(data)
            await sink.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        sink.transport.abort()  # one side gone: so is the other
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1):
                await sink.wait_closed()


@asynccontextmanager
async def tcp_proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or LOCALHOST, url.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()
