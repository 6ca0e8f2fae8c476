"""Schema migrations: Alembic driven from code, for the server's start-up, the CLI and tests.

The scripts live in the repository's alembic/ folder, which the wheel ships as the package
`gql_scheduler.migrations` (see pyproject.toml), so they are found both from a checkout and
from an installed wheel. alembic/env.py calls `exclusive()` so that every way of migrating,
`alembic upgrade head` included, takes the same lock.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Final, TypeVar

import alembic.command
import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_scheduler.domain.errors import SchedulerError
from gql_scheduler.store import database as store_database

# Shared by every instance of the app, so any two migrators on one PostgreSQL database take
# turns. The bytes spell "gqls_mig"; the value only has to be fixed and unlikely elsewhere.
MIGRATION_LOCK_KEY: Final = 0x67716C735F6D6967

_SCRIPTS_PACKAGE = "gql_scheduler.migrations"
_CHECKOUT_SCRIPTS = Path(__file__).resolve().parents[2] / "alembic"

# Alembic runs a command through module-level proxies (alembic.context, alembic.op), so two
# commands at once in one process corrupt each other's state. Between processes, the
# database lock of exclusive() decides; within one, this lock.
_COMMAND_LOCK = threading.Lock()
_COMMAND_LOCK_POLL_SECONDS = 0.05

_T = TypeVar("_T")
_Command = Callable[[Config, str], None]


class MigrationError(SchedulerError):
    """The database could not be migrated."""


def script_location() -> Path:
    """The folder holding env.py and versions/: in the installed package, else the checkout."""
    try:
        scripts = importlib.resources.files(_SCRIPTS_PACKAGE)
    except ModuleNotFoundError:
        # A checkout run with PYTHONPATH=. has no such package; neither has an editable
        # install, whose finder cannot map a folder without __init__.py. Both keep the
        # scripts next to the package.
        return _checked(_CHECKOUT_SCRIPTS)
    env_script = scripts.joinpath("env.py")
    # Alembic loads env.py and the revisions from files, so a zipped install cannot work.
    if not isinstance(env_script, Path):
        raise MigrationError(f"{_SCRIPTS_PACKAGE} is not on the file system")
    return _checked(env_script.parent)


def _checked(location: Path) -> Path:
    if not (location / "env.py").is_file():
        raise MigrationError(f"no env.py in {location}")
    return location


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration for this package's scripts, without reading alembic.ini.

    No ini file means env.py leaves the application's logging alone. Without `url`, env.py
    takes GQL_SCHEDULER_DATABASE_URL or its default, as `alembic` on the command line does.
    """
    config = Config()
    config.set_main_option("script_location", _escape(str(script_location())))
    if url is not None:
        config.set_main_option("sqlalchemy.url", _escape(url))
    return config


def _escape(value: str) -> str:
    # Options go through configparser interpolation: a percent-encoded password would break.
    return value.replace("%", "%%")


def head_revision() -> str | None:
    """The newest revision of the scripts: the one a current database is at."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`; every connection is closed on return.

    Synchronous, for the CLI and sync test fixtures: it runs its own event loop, so it must
    not be called where one is running (use `upgrade_async` there).
    """
    asyncio.run(_with_engine(url, lambda engine: _run(engine, alembic.command.upgrade, revision)))


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at `url` down to `revision` (by default, drop every table)."""
    asyncio.run(_with_engine(url, lambda engine: _run(engine, alembic.command.downgrade, revision)))


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate through one connection of `engine`, for a server starting inside its loop."""
    await _run(engine, alembic.command.upgrade, revision)


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, None when it was never migrated."""
    return asyncio.run(_with_engine(url, current_revision_async))


async def current_revision_async(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revision)


def _current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _with_engine(url: str, work: Callable[[AsyncEngine], Awaitable[_T]]) -> _T:
    # The engine of database.py, so that SQLite gets the same pragmas as the server's.
    engine = store_database.create_engine(url)
    try:
        return await work(engine)
    finally:
        # Nothing may stay connected: tests clone the migrated database with CREATE
        # DATABASE ... TEMPLATE, which PostgreSQL refuses while the template has a session.
        await engine.dispose()


async def _run(engine: AsyncEngine, operation: _Command, revision: str) -> None:
    # Not engine.begin(): env.py must see the connection outside a transaction, to switch
    # SQLite's foreign keys off and to begin (and commit) the migration's own transaction.
    async with _alembic_turn(), engine.connect() as connection:
        await connection.run_sync(_run_command, operation, revision)


@asynccontextmanager
async def _alembic_turn() -> AsyncIterator[None]:
    # Polled, never blocking: the holder may be another task of this very loop (a command
    # yields to the loop at every query), and a waiter cancelled mid-acquire must not leak it.
    # No asyncio.Event: the holder may be running another thread's loop.
    while not _COMMAND_LOCK.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(_COMMAND_LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        _COMMAND_LOCK.release()


def _run_command(connection: sa.Connection, operation: _Command, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    operation(config, revision)


@contextmanager
def exclusive(
    connection: sa.Connection, begin: Callable[[], AbstractContextManager[object]]
) -> Iterator[None]:
    """Open the migration's transaction with `begin`, alone: other migrators wait for it.

    Two servers starting at once on one database both migrate; the second must wait for the
    first to commit and then find nothing to do. A connection already in a transaction is
    the caller's: it is used as it is.
    """
    if connection.dialect.name == "sqlite" and not connection.in_transaction():
        with _sqlite_exclusive(connection, begin):
            yield
    else:
        with begin():
            _lock_postgresql(connection)
            yield


def _lock_postgresql(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Transaction-level: released by the commit, or by the rollback if a migration fails.
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))


@contextmanager
def _sqlite_exclusive(
    connection: sa.Connection, begin: Callable[[], AbstractContextManager[object]]
) -> Iterator[None]:
    # BEGIN IMMEDIATE (database.py's write option) takes SQLite's write lock up front, so a
    # second migrator waits on busy_timeout rather than failing at its first write.
    connection.execution_options(**{store_database.WRITE_OPTION: True})
    # Batch mode rebuilds a table by copying it and dropping the original; with foreign
    # keys on, that DROP cascades to the rows referencing it. SQLite ignores this pragma
    # inside a transaction, so it is set around it, and checked before the commit instead.
    _set_sqlite_foreign_keys(connection, enabled=False)
    try:
        with begin():
            yield
            _check_sqlite_foreign_keys(connection)
    finally:
        _set_sqlite_foreign_keys(connection, enabled=True)


def _set_sqlite_foreign_keys(connection: sa.Connection, *, enabled: bool) -> None:
    # Through the driver: a SQLAlchemy execute would begin a transaction first.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")
    finally:
        cursor.close()


def _check_sqlite_foreign_keys(connection: sa.Connection) -> None:
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if violations:
        raise MigrationError(f"the migration broke foreign keys (table, rowid, ...): {violations}")
