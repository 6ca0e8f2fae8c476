"""Throw-away databases for the benchmarks: a temporary SQLite file by default, or a database
of the bench's own on a PostgreSQL server, created for one run and dropped after it.

A PostgreSQL URL names the server (and the database to connect to while creating the
scratch one): nothing in that database is read or written.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

POSTGRES_VARIABLE = "GQL_SCHEDULER_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def postgres_server(url: str | None = None) -> str:
    """The server to make scratch databases on: `url`, else the bench's variable, else the
    local one."""
    return url or os.environ.get(POSTGRES_VARIABLE, DEFAULT_POSTGRES)


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def plain_dsn(url: str) -> str:
    """The URL as asyncpg takes it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_database(server: str | None) -> AsyncIterator[str]:
    """A fresh database's SQLAlchemy URL: SQLite in a temporary folder when `server` is
    None, else a new database on that PostgreSQL server, dropped afterwards."""
    if server is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        return
    admin = make_url(server)
    name = f"gqls_bench_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(plain_dsn(server), timeout=10)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


async def postgres_deadlocks(url: str) -> int:
    """Deadlocks PostgreSQL detected in the URL's database since it was made."""
    connection = await asyncpg.connect(plain_dsn(url), timeout=10)
    try:
        await connection.execute("SELECT pg_stat_force_next_flush()")
        value = await connection.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(value or 0)
    finally:
        await connection.close()
