"""Real databases for tests: a fresh SQLite file or a fresh PostgreSQL database per test.

PostgreSQL is required: the suite fails (not skips) when the server is unreachable, unless
GQL_SCHEDULER_TEST_SKIP_POSTGRES=1 says this machine has none. Each run migrates one
template database once and clones it per test (CREATE DATABASE ... TEMPLATE), as
procrastinate does; every database a test makes is dropped by that test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

POSTGRES_URL_VARIABLE = "GQL_SCHEDULER_TEST_POSTGRES_URL"
SKIP_POSTGRES_VARIABLE = "GQL_SCHEDULER_TEST_SKIP_POSTGRES"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get(POSTGRES_URL_VARIABLE, DEFAULT_POSTGRES_URL)


def postgres_skipped() -> bool:
    return os.environ.get(SKIP_POSTGRES_VARIABLE, "") in ("1", "true", "yes")


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(postgres_admin_url()), timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def check_postgres() -> str | None:
    """None when the server answers, else why not."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def create_postgres_database(template: str | None = None) -> str:
    name = f"gqls_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_admin(f'CREATE DATABASE "{name}"{clause}'))
    return with_database(postgres_admin_url(), name)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def copy_sqlite_database(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return sqlite_url(target)
