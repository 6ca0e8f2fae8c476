"""Alembic's environment: where the database comes from and how a migration runs.

Used by `alembic ...` from the repository root and by gql_scheduler.store.migrations, which
either hands in a connection or sets sqlalchemy.url. Keep this file free of side effects
beyond migrating: it is executed by every Alembic command.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from sqlalchemy.engine import Connection, make_url

from alembic import context
from gql_scheduler.store import database as store_database
from gql_scheduler.store import migrations
from gql_scheduler.store.tables import metadata

DATABASE_URL_VARIABLE = "GQL_SCHEDULER_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./gql_scheduler.db"

config = context.config
target_metadata = metadata

# Only the command line has an ini file. The application configures Alembic in code and
# keeps its own logging; even here, loggers created before this point stay enabled.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    return (
        config.get_main_option("sqlalchemy.url")
        or os.environ.get(DATABASE_URL_VARIABLE)
        or DEFAULT_DATABASE_URL
    )


def configure_options(dialect_name: str) -> dict[str, object]:
    return {
        "target_metadata": target_metadata,
        # SQLite can alter little in place: batch mode rebuilds the table instead.
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        # Alembic misreads SQLite's empty-string default ('') as a change: PostgreSQL only.
        "compare_server_default": dialect_name != "sqlite",
        # SQLite's DDL is transactional too once the driver stops managing transactions,
        # which engine.py arranges: every upgrade is all or nothing on both backends.
        "transactional_ddl": True,
    }


def run_migrations_offline() -> None:
    """Write the SQL to stdout (`alembic upgrade head --sql`) instead of running it."""
    url = database_url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **configure_options(make_url(url).get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **configure_options(connection.dialect.name))
    with migrations.exclusive(connection, context.begin_transaction):
        context.run_migrations()


async def run_async_migrations() -> None:
    # engine.py's engine, so that SQLite gets the pragmas the server runs with.
    engine = store_database.create_engine(database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
