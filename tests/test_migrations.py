"""The migrations build exactly the models, on SQLite and on PostgreSQL, from every entry point.

Drift is checked with Alembic's own comparison, plus the one thing it cannot see: the WHERE
clause of the partial unique index behind invariant 2.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateIndex

from gql_scheduler.domain.executions import ExecutionTrigger
from gql_scheduler.store import database as store_database
from gql_scheduler.store import migrations, tables
from tests import databases

ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_TIMEOUT = 45
OCCURRENCE_INDEX = "uq_executions_occurrence"
AT = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)

both_backends = pytest.mark.parametrize(
    "empty_database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
postgresql_only = pytest.mark.parametrize(
    "empty_database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
sqlite_only = pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True)


@pytest.fixture
def migrated_url(empty_database_url: str) -> str:
    migrations.upgrade(empty_database_url)
    return empty_database_url


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[AsyncConnection]:
    engine = store_database.create_engine(url)
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


def _compare(connection: sa.Connection, metadata: sa.MetaData) -> list[Any]:
    # As alembic/env.py: Alembic misreads SQLite's empty-string default as a change.
    options = {"compare_type": True, "compare_server_default": connection.dialect.name != "sqlite"}
    context = MigrationContext.configure(connection, opts=options)
    return compare_metadata(context, metadata)


async def schema_diff(url: str, metadata: sa.MetaData = tables.metadata) -> list[Any]:
    """What Alembic would have to change for the database at `url` to match `metadata`."""
    async with connect(url) as connection:
        return await connection.run_sync(_compare, metadata)


def diff_kinds(diff: list[Any]) -> set[str]:
    # Column changes come as a list of tuples per column, everything else as one tuple.
    return {(item[0] if isinstance(item, tuple) else item[0][0]) for item in diff}


async def application_tables(url: str) -> set[str]:
    async with connect(url) as connection:
        names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    return set(names) - {"alembic_version"}


def is_postgresql(url: str) -> bool:
    return sa.engine.make_url(url).get_backend_name() == "postgresql"


def models_copy() -> sa.MetaData:
    copy = sa.MetaData(naming_convention=tables.metadata.naming_convention)
    for table in tables.metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


def execution(trigger: ExecutionTrigger, *, job_id: str = "job-1") -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": "QUEUED",
        "trigger": trigger.value,
        "attempt": 1,
        "scheduled_for": AT,
        "queued_at": AT,
    }


def job(job_id: str, created_at: datetime) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": f"job {job_id}",
        "state": "ACTIVE",
        "schedules": [],
        "action": {"kind": "noop"},
        "jitter_seconds": 0.0,
        "overlap_policy": "ALLOW",
        "delivery": "AT_LEAST_ONCE",
        "retry": {},
        "created_at": created_at,
        "updated_at": created_at,
        "version": 1,
    }


async def insert(url: str, table: sa.Table, *rows: dict[str, Any]) -> None:
    """Each row in its own committed transaction, as concurrent writers would."""
    database = store_database.Database(url)
    try:
        for row in rows:
            async with database.write() as connection:
                await connection.execute(table.insert(), row)
    finally:
        await database.dispose()


async def count(url: str, table: sa.Table) -> int:
    async with connect(url) as connection:
        return int(await connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


# --- no drift between the migrations and the models ------------------------------------------


@both_backends
async def test_migrations_build_the_models(migrated_url: str) -> None:
    assert migrations.head_revision() == "0005"
    assert await schema_diff(migrated_url) == []


@both_backends
async def test_drift_check_reports_a_changed_model(migrated_url: str) -> None:
    # The test above passes only because nothing differs, not because nothing is compared.
    changed = models_copy()
    changed.tables["jobs"].append_column(sa.Column("extra", sa.Integer))
    changed.tables["jobs"].c.description.nullable = False
    changed.tables["events"].c.kind.type = sa.String(32)
    executions = changed.tables["executions"]
    executions.indexes.discard(next(i for i in executions.indexes if i.name == OCCURRENCE_INDEX))
    (tag_fk,) = changed.tables["job_tags"].foreign_key_constraints
    tag_fk.ondelete = "SET NULL"
    executions.c.cancel_requested.server_default = sa.DefaultClause(sa.true())

    kinds = diff_kinds(await schema_diff(migrated_url, changed))

    expected = {
        "add_column",
        "modify_nullable",
        "modify_type",
        "remove_index",
        "remove_fk",
        "add_fk",
    }
    if is_postgresql(migrated_url):
        expected.add("modify_default")  # not compared on SQLite, see _compare()
    assert kinds == expected


async def _index_definitions(connection: AsyncConnection, names: list[str]) -> dict[str, str]:
    if connection.dialect.name == "postgresql":
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(:names)"
        result = await connection.execute(sa.text(query), {"names": names})
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN :names"
        statement = sa.text(query).bindparams(sa.bindparam("names", expanding=True))
        result = await connection.execute(statement, {"names": names})
    return dict(result.all())


@both_backends
async def test_occurrence_index_has_the_models_predicate(migrated_url: str) -> None:
    # Alembic compares an index's columns and uniqueness, not its WHERE clause. So build the
    # models' index under another name and let the database say whether the two are the same.
    model_index = next(i for i in tables.executions.indexes if i.name == OCCURRENCE_INDEX)
    async with connect(migrated_url) as connection:
        ddl = str(CreateIndex(model_index).compile(dialect=connection.dialect))
        await connection.begin()
        await connection.exec_driver_sql(ddl.replace(OCCURRENCE_INDEX, "probe_occurrence"))
        definitions = await _index_definitions(connection, [OCCURRENCE_INDEX, "probe_occurrence"])
        await connection.rollback()
        reflected = await connection.run_sync(
            lambda sync: sa.inspect(sync).get_indexes("executions")
        )

    migrated = definitions[OCCURRENCE_INDEX]
    assert migrated == definitions["probe_occurrence"].replace("probe_occurrence", OCCURRENCE_INDEX)
    assert "WHERE" in migrated
    assert "'SCHEDULE'" in migrated
    assert "'MANUAL'" not in migrated
    (occurrence,) = (index for index in reflected if index["name"] == OCCURRENCE_INDEX)
    assert occurrence["unique"]
    assert occurrence["column_names"] == ["job_id", "scheduled_for"]


@both_backends
async def test_downgrade_to_base_drops_everything_and_upgrade_rebuilds(migrated_url: str) -> None:
    await asyncio.to_thread(migrations.downgrade, migrated_url)

    assert await application_tables(migrated_url) == set()
    assert await asyncio.to_thread(migrations.current_revision, migrated_url) is None

    await asyncio.to_thread(migrations.upgrade, migrated_url)

    assert await application_tables(migrated_url) == set(tables.metadata.tables)
    assert await schema_diff(migrated_url) == []


# --- invariant 2: one execution per schedule occurrence --------------------------------------


@both_backends
async def test_occurrence_index_refuses_a_second_execution_of_an_occurrence(
    migrated_url: str,
) -> None:
    await insert(migrated_url, tables.executions, execution(ExecutionTrigger.SCHEDULE))

    for trigger in (ExecutionTrigger.SCHEDULE, ExecutionTrigger.CATCH_UP):
        with pytest.raises(sa.exc.IntegrityError):
            await insert(migrated_url, tables.executions, execution(trigger))

    assert await count(migrated_url, tables.executions) == 1


@both_backends
async def test_occurrence_index_lets_manual_runs_and_retries_share_an_instant(
    migrated_url: str,
) -> None:
    await insert(
        migrated_url,
        tables.executions,
        execution(ExecutionTrigger.SCHEDULE),
        execution(ExecutionTrigger.MANUAL),
        execution(ExecutionTrigger.MANUAL),
        execution(ExecutionTrigger.RETRY),
        execution(ExecutionTrigger.SCHEDULE, job_id="job-2"),
    )

    assert await count(migrated_url, tables.executions) == 5


@both_backends
async def test_on_conflict_do_nothing_claims_an_occurrence_once(migrated_url: str) -> None:
    database = store_database.Database(migrated_url)
    insert_for = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    statement = (
        insert_for[database.engine.dialect.name](tables.executions)
        .values(execution(ExecutionTrigger.SCHEDULE))
        .on_conflict_do_nothing(
            index_elements=["job_id", "scheduled_for"], index_where=tables.OCCURRENCE_WHERE
        )
    )
    try:
        claimed = []
        for _ in range(2):
            async with database.write() as connection:
                claimed.append((await connection.execute(statement)).rowcount)
    finally:
        await database.dispose()

    assert claimed == [1, 0]
    assert await count(migrated_url, tables.executions) == 1


# --- timestamps -------------------------------------------------------------------------------


@both_backends
async def test_aware_timestamps_round_trip_as_utc(migrated_url: str) -> None:
    paris_summer = timezone(timedelta(hours=2))
    written = datetime(2026, 7, 14, 9, 30, 15, 123456, tzinfo=paris_summer)
    await insert(migrated_url, tables.jobs, job("job-1", written))

    async with connect(migrated_url) as connection:
        read = await connection.scalar(sa.select(tables.jobs.c.created_at))

    assert read == written
    assert read is not None
    assert read.tzinfo == UTC
    assert read.microsecond == 123456


@both_backends
async def test_naive_timestamps_are_refused(migrated_url: str) -> None:
    with pytest.raises(sa.exc.StatementError) as refused:
        await insert(migrated_url, tables.jobs, job("job-1", datetime(2026, 7, 14, 9, 30)))

    assert isinstance(refused.value.orig, ValueError)
    assert await count(migrated_url, tables.jobs) == 0


# --- entry points -----------------------------------------------------------------------------


@both_backends
async def test_upgrade_async_runs_inside_a_running_loop(empty_database_url: str) -> None:
    engine = store_database.create_engine(empty_database_url)
    try:
        await migrations.upgrade_async(engine)

        assert await migrations.current_revision_async(engine) == "0005"
        # The server keeps using this engine: its connections must come back as they went.
        if engine.dialect.name == "sqlite":
            async with engine.connect() as connection:
                assert await connection.scalar(sa.text("PRAGMA foreign_keys")) == 1
    finally:
        await engine.dispose()
    assert await schema_diff(empty_database_url) == []


@postgresql_only
async def test_upgrade_leaves_no_session_on_the_database(empty_database_url: str) -> None:
    # conftest clones the migrated database with CREATE DATABASE ... TEMPLATE, which
    # PostgreSQL refuses while the template has a session.
    await asyncio.to_thread(migrations.upgrade, empty_database_url)
    name = sa.engine.make_url(empty_database_url).database

    async with connect(databases.postgres_admin_url()) as connection:
        sessions = await connection.scalar(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        )

    assert sessions == 0


def test_scripts_are_found_in_the_checkout() -> None:
    assert migrations.script_location() == ROOT / "alembic"
    assert migrations.alembic_config().get_main_option("script_location") == str(ROOT / "alembic")


def test_alembic_config_keeps_percent_signs_in_the_url() -> None:
    url = "postgresql+asyncpg://scheduler:p%40ss%25word@db.example/gql"

    assert migrations.alembic_config(url).get_main_option("sqlalchemy.url") == url


def _run(command: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _environment(pythonpath: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GQL_SCHEDULER_DATABASE")}
    return {**env, "PYTHONPATH": str(pythonpath), **variables}


def test_alembic_command_line_upgrades_from_the_checkout(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = _environment(ROOT, GQL_SCHEDULER_DATABASE_URL=url)

    _run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env)

    assert migrations.current_revision(url) == "0005"
    assert asyncio.run(schema_diff(url)) == []


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///unused.db", "postgresql+asyncpg://nobody@unused.invalid/none"]
)
def test_alembic_offline_mode_writes_the_sql(url: str) -> None:
    env = _environment(ROOT, GQL_SCHEDULER_DATABASE_URL=url)

    sql = _run([sys.executable, "-m", "alembic", "upgrade", "head", "--sql"], cwd=ROOT, env=env)

    assert sql.count("CREATE TABLE") == len(tables.metadata.tables) + 1  # and alembic_version
    assert "CREATE UNIQUE INDEX uq_executions_occurrence" in sql
    assert "WHERE \"trigger\" IN ('SCHEDULE', 'CATCH_UP', 'BACKFILL')" in sql
    assert "BEGIN;" in sql
    assert "COMMIT;" in sql


def test_scripts_are_found_in_an_installed_package(tmp_path: Path) -> None:
    # The wheel's layout (pyproject.toml maps alembic/ to gql_scheduler.migrations), without
    # the checkout on sys.path: the scripts must come from importlib.resources.
    site = tmp_path / "site"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "gql_scheduler", site / "gql_scheduler", ignore=ignore)
    shutil.copytree(ROOT / "alembic", site / "gql_scheduler" / "migrations", ignore=ignore)
    url = f"sqlite+aiosqlite:///{tmp_path / 'installed.db'}"
    script = (
        "import sys; from gql_scheduler.store import migrations; "
        "migrations.upgrade(sys.argv[1]); "
        "print(migrations.script_location()); print(migrations.current_revision(sys.argv[1]))"
    )

    output = _run([sys.executable, "-c", script, url], cwd=tmp_path, env=_environment(site))

    assert output.split() == [str(site / "gql_scheduler" / "migrations"), "0005"]


# --- migrators take turns ---------------------------------------------------------------------


@both_backends
async def test_concurrent_upgrades_in_threads_both_succeed(empty_database_url: str) -> None:
    # Alembic's module-level proxies make one process run one command at a time.
    upgrades = [asyncio.to_thread(migrations.upgrade, empty_database_url) for _ in range(2)]

    await asyncio.wait_for(asyncio.gather(*upgrades), timeout=45)

    assert await asyncio.to_thread(migrations.current_revision, empty_database_url) == "0005"
    assert await schema_diff(empty_database_url) == []


# Imports first, then waits for the word: both processes reach the database together.
_UPGRADE_ON_GO = (
    "import sys; from gql_scheduler.store import migrations; "
    "sys.stdin.readline(); migrations.upgrade(sys.argv[1])"
)


@both_backends
def test_concurrent_upgrades_in_processes_both_succeed(empty_database_url: str) -> None:
    # Two servers starting at once: only the database lock stands between them. The database
    # exists beforehand: engine.py's PRAGMA journal_mode=WAL can fail with "database is
    # locked" when two processes open a brand-new SQLite file at once (not a migration issue).
    assert asyncio.run(application_tables(empty_database_url)) == set()
    command = [sys.executable, "-c", _UPGRADE_ON_GO, empty_database_url]
    processes = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=_environment(ROOT),
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        errors = [process.communicate(timeout=SUBPROCESS_TIMEOUT)[1] for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()

    assert [process.returncode for process in processes] == [0, 0], [e[-3000:] for e in errors]
    assert migrations.current_revision(empty_database_url) == "0005"
    assert asyncio.run(schema_diff(empty_database_url)) == []


async def _wait_for_advisory_lock_waiter(connection: AsyncConnection) -> None:
    query = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid::bigint = :high AND objid::bigint = :low"
    )
    key = migrations.MIGRATION_LOCK_KEY
    params = {"high": key >> 32, "low": key & 0xFFFFFFFF}
    async with asyncio.timeout(20):
        # Polling the server's state: there is no event to await.
        while not await connection.scalar(query, params):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@postgresql_only
async def test_upgrade_waits_for_the_migration_lock(empty_database_url: str) -> None:
    async with connect(empty_database_url) as holder, connect(empty_database_url) as observer:
        await holder.begin()
        await holder.execute(
            sa.select(sa.func.pg_advisory_xact_lock(migrations.MIGRATION_LOCK_KEY))
        )
        upgrade = asyncio.ensure_future(asyncio.to_thread(migrations.upgrade, empty_database_url))

        await _wait_for_advisory_lock_waiter(observer)
        assert not upgrade.done()
        await holder.commit()
        await asyncio.wait_for(upgrade, timeout=30)

    assert await schema_diff(empty_database_url) == []


# --- SQLite: batch rebuilds must not cascade --------------------------------------------------


def _rebuild_jobs(connection: sa.Connection, begin: Callable[[], Any]) -> None:
    """A batch migration's table rebuild: copy jobs, DROP the original, rename the copy."""
    context = MigrationContext.configure(connection, opts={"render_as_batch": True})
    with begin(), Operations(context).batch_alter_table("jobs", recreate="always"):
        pass


@sqlite_only
async def test_sqlite_batch_rebuild_keeps_the_rows_that_reference_the_table(
    migrated_url: str,
) -> None:
    await insert(migrated_url, tables.jobs, job("job-1", AT))
    await insert(migrated_url, tables.job_tags, {"job_id": "job-1", "tag": "nightly"})

    async with connect(migrated_url) as connection:
        await connection.run_sync(
            lambda sync: _rebuild_jobs(sync, lambda: migrations.exclusive(sync, sync.begin))
        )
    assert await count(migrated_url, tables.job_tags) == 1

    # Why exclusive() switches foreign keys off: the same rebuild without it loses the tags.
    async with connect(migrated_url) as connection:
        await connection.run_sync(lambda sync: _rebuild_jobs(sync, sync.begin))
    assert await count(migrated_url, tables.job_tags) == 0
