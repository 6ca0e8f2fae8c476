"""The database handle: one async engine, with read and write transactions."""

from __future__ import annotations

import copy
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gql_scheduler.domain.errors import Unavailable
from gql_scheduler.store.checkpoints import (
    AUTOCHECKPOINT_BACKSTOP_PAGES,
    JOURNAL_SIZE_LIMIT_BYTES,
    WalCheckpointer,
)
from gql_scheduler.store.events import PENDING_OPTION, PendingWrites, flush_pending
from gql_scheduler.store.outages import OutageLog, is_unreachable
from gql_scheduler.store.writer_turns import WriterTurns

SQLITE_BUSY_TIMEOUT_MS = 10_000
WRITE_OPTION = "gql_scheduler_write"
# The API's connections give up soon on a server that does not answer, or on a SQLite file
# another process holds locked: a request fails fast with UNAVAILABLE instead of hanging
# (asyncpg's default is 60 s, the engine's SQLite busy timeout 10 s).
API_CONNECT_TIMEOUT = 3.0
# And on PostgreSQL no API statement waits longer than this for its answer: a server cut
# off without a word (no reset, no reply) would otherwise hold the request for good.
API_STATEMENT_TIMEOUT = 5.0
UNAVAILABLE_MESSAGE = "the database is unavailable; try again shortly"

# Told, after each commit that wrote events or output, which signals it carried.
CommitListener = Callable[[Iterable[str]], None]


class Database:
    """Owns the engine. Repositories receive connections from `read()` and `write()`."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.engine: AsyncEngine = create_engine(url, echo=echo)
        # SQLite has one writer at a time. Queuing writers here, in order, beats letting
        # them collide on the file lock, where the busy handler sleeps in growing steps.
        self._write_turns = WriterTurns() if self.is_sqlite else None
        # The engine's writes go first (writer_turns.py); the API's copy is not urgent.
        self.urgent_writes = True
        self._commit_listeners: list[CommitListener] = []
        # Set on the API's database (with_own_pool): see _unavailable_as_error.
        self.unavailable_as_error = False
        # One per process (copies share it): every component that meets the outage
        # reports it here, so that it is said once, and its end once.
        self.outage = OutageLog(logging.getLogger("gql_scheduler.store"))
        path = sqlite_file(self.url.database) if self.is_sqlite else None
        # Checkpoints off the writers' path once `run()` is started (Container.start).
        self.checkpointer = WalCheckpointer(path, outage=self.outage) if path is not None else None

    def with_own_pool(self, *, size: int, timeout: float) -> Database:
        """The same database through a separate pool of at most `size` connections.

        The API's: requests wait (up to `timeout` seconds) for one of its own connections
        and can never take those the engine claims and starts runs with. Everything else
        is shared: SQLite's writer queue (one writer at a time, across both), the commit
        listeners and the checkpointer.
        """
        if self.is_sqlite and sqlite_file(self.url.database) is None:
            return self  # in memory: another engine would open another, empty, database
        other = copy.copy(self)
        connect: dict[str, Any] = (
            {"busy_timeout_ms": int(API_CONNECT_TIMEOUT * 1000)}
            if self.is_sqlite
            else {
                "connect_args": {
                    "timeout": API_CONNECT_TIMEOUT,
                    "command_timeout": API_STATEMENT_TIMEOUT,
                }
            }
        )
        other.engine = create_engine(
            self.url.render_as_string(hide_password=False),
            pool_size=size,
            max_overflow=0,
            pool_timeout=timeout,
            **connect,
        )
        other.unavailable_as_error = True
        other.urgent_writes = False
        return other

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._commit_listeners.append(listener)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only view. On PostgreSQL one snapshot for the whole transaction, so that
        a page and its total count agree (SQLite's transactions already read one)."""
        with self._unavailable_as_error():
            async with self.engine.connect() as connection:
                if not self.is_sqlite:
                    connection = await connection.execution_options(
                        isolation_level="REPEATABLE READ"
                    )
                async with connection.begin():
                    yield connection

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        """On the API's database: a database that cannot be reached (refused, gone, locked,
        out of connections) is the domain's Unavailable, which clients see as UNAVAILABLE."""
        if not self.unavailable_as_error:
            yield
            return
        try:
            yield
        except Exception as error:
            if is_unreachable(error):
                raise Unavailable(UNAVAILABLE_MESSAGE) from error
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that will write: committed on exit, rolled back on error.

        The events it appended are inserted last, just before the commit (store/events.py
        says why), and the commit listeners hear of them once committed.
        """
        writes = PendingWrites()
        with self._unavailable_as_error():
            async with self._writer_turn(), self.engine.connect() as connection:
                options = {WRITE_OPTION: True, PENDING_OPTION: writes}
                connection = await connection.execution_options(**options)
                async with connection.begin():
                    yield connection
                    await flush_pending(connection, writes)
        if self.checkpointer is not None:
            self.checkpointer.note_write()
        if writes.signals:
            for listener in self._commit_listeners:
                listener(writes.signals)

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        if self._write_turns is None:
            yield
            return
        async with self._write_turns.turn(urgent=self.urgent_writes):
            yield

    async def dispose(self) -> None:
        await self.engine.dispose()


def sqlite_file(database: str | None) -> Path | None:
    """The file an SQLite URL's database names; None for in-memory and URI forms."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(
    url: str,
    *,
    echo: bool = False,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    **pool: Any,
) -> AsyncEngine:
    """`pool` options (pool_size, max_overflow, pool_timeout) as SQLAlchemy takes them;
    `busy_timeout_ms`: how long SQLite waits for another process's lock."""
    parsed = make_url(url)
    # Statements are logged (echo, or a DEBUG log level) without their values: those are
    # jobs' actions, secrets included.
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, echo=echo, pool_pre_ping=True, hide_parameters=True, **pool)
    path = sqlite_file(parsed.database)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, hide_parameters=True, **pool)
    _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the driver so that `begin` below decides
        # between DEFERRED and IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_BACKSTOP_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that upgrades from
        # read to write fails at once with SQLITE_BUSY instead of waiting on busy_timeout.
        writes = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL once. SQLite does not call the busy handler for this pragma,
    so two processes opening a new file at once may see "database is locked": retry."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if cursor.fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # in the driver's own thread, not on the event loop
