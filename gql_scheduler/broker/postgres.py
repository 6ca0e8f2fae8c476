"""PostgreSQL LISTEN/NOTIFY through a dedicated asyncpg connection.

Writers send NOTIFY inside their transaction (store/events.py), so a notification arrives
only for what committed, from every instance, this one included. The listening connection
can drop; it is opened again with backoff, and each (re)connect is announced as a resync
signal, so that whatever was committed while nobody listened is read from the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from gql_scheduler.broker.base import SignalHandler
from gql_scheduler.domain.events import NOTIFY_CHANNEL, RESYNC_SIGNAL
from gql_scheduler.tasks import BackgroundTasks

log = logging.getLogger("gql_scheduler.broker")

RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0
CONNECT_TIMEOUT = 10.0
# How often the listening connection is checked: a half-open TCP connection would
# otherwise stay silent, and notifications with it.
HEALTH_CHECK_SECONDS = 5.0


class PostgresBroker:
    spans_processes = True

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.reconnect_delay = RECONNECT_FIRST_DELAY
        self._on_signals: SignalHandler | None = None
        self._connection: Any = None
        self._background = BackgroundTasks()
        self._lost = asyncio.Event()

    async def start(self, on_signals: SignalHandler) -> None:
        self._on_signals = on_signals
        await self._connect()  # the first connection must work: fail the start otherwise
        self._background.start(self._keep_connected(), name="broker-listener")

    async def stop(self) -> None:
        await self._background.stop()
        await self._close()

    @property
    def listening(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed() and not self._lost.is_set()

    def listener_pid(self) -> int | None:
        """The server process id of the listening connection, while there is one."""
        connection = self._connection
        if connection is None or connection.is_closed():
            return None
        pid: int = connection.get_server_pid()
        return pid

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT)
        connection.add_termination_listener(self._on_terminated)
        await connection.add_listener(NOTIFY_CHANNEL, self._on_notification)
        self._connection = connection
        self._lost.clear()
        self._emit(RESYNC_SIGNAL)

    async def _keep_connected(self) -> None:
        delay = self.reconnect_delay
        while True:
            if await self._healthy():
                delay = self.reconnect_delay
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HEALTH_CHECK_SECONDS):
                        await self._lost.wait()
                continue
            await self._close()
            await asyncio.sleep(delay)  # a database restarting is not hammered
            try:
                await self._connect()
                log.info("event listener reconnected", extra={"action": "broker_reconnected"})
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                # Said once per outage; the retries after it only at DEBUG.
                level = logging.WARNING if delay == self.reconnect_delay else logging.DEBUG
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                log.log(
                    level,
                    "event listener cannot reconnect (%s); retrying in %.1f s",
                    error,
                    delay,
                    extra={"action": "broker_reconnect_failed"},
                )

    async def _healthy(self) -> bool:
        connection = self._connection
        if connection is None or connection.is_closed() or self._lost.is_set():
            return False
        try:
            async with asyncio.timeout(HEALTH_CHECK_SECONDS):
                await connection.execute("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        return True

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await connection.close()
            if not connection.is_closed():
                connection.terminate()

    def _on_terminated(self, _connection: Any) -> None:
        log.warning("event listener connection lost", extra={"action": "broker_lost"})
        self._lost.set()

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._emit(payload)

    def _emit(self, signal: str) -> None:
        if self._on_signals is not None:
            self._on_signals((signal,))
