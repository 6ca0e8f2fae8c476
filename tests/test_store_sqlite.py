"""The embedded SQLite store: WAL checkpoints off the writers' path, and the hot path's index."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from gql_scheduler.store.database import Database
from gql_scheduler.store.tables import events_pruned
from gql_scheduler.store.transitions import TransitionRepository
from tests import databases
from tests.engine_helpers import poll

pytestmark = pytest.mark.asyncio


@pytest.fixture
def sqlite_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    databases.copy_sqlite_database(sqlite_template, path)
    return path


def rows_in_database_file(path: Path) -> int:
    """The rows of events_pruned as the database file alone holds them: `immutable` reads
    the file without its WAL, so a committed write shows here only once checkpointed."""
    connection = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(connection.execute("SELECT count(*) FROM events_pruned").fetchone()[0])
    finally:
        connection.close()


async def test_the_background_checkpointer_copies_commits_into_the_database_file(
    sqlite_path: Path,
) -> None:
    database = Database(databases.sqlite_url(sqlite_path))
    assert database.checkpointer is not None
    checkpoints: asyncio.Task[None] | None = None
    try:
        async with database.write() as connection:
            await connection.execute(events_pruned.insert().values(id=1, through_id=7))
        # The commit itself left its pages in the WAL (it does not checkpoint)...
        assert rows_in_database_file(sqlite_path) == 0
        checkpoints = asyncio.create_task(database.checkpointer.run())

        async def in_file() -> int:
            return await asyncio.to_thread(rows_in_database_file, sqlite_path)

        # ...and the checkpointer, told of it, copies them back.
        await poll(in_file, lambda count: count == 1, within=5)
    finally:
        if checkpoints is not None:
            checkpoints.cancel()
            await asyncio.gather(checkpoints, return_exceptions=True)
        await database.dispose()


async def test_an_in_memory_database_has_no_checkpointer() -> None:
    database = Database("sqlite+aiosqlite:///:memory:")
    try:
        assert database.checkpointer is None
    finally:
        await database.dispose()


async def test_start_batches_read_unfinished_runs_through_the_partial_index(
    sqlite_path: Path,
) -> None:
    """Overlap decisions look up QUEUED and RUNNING runs for every start batch; the small
    partial index must serve that, not a scan of each job's whole history."""
    database = Database(databases.sqlite_url(sqlite_path))
    plans: list[str] = []

    @sa.event.listens_for(database.engine.sync_engine, "before_cursor_execute", retval=True)
    def explain(
        connection: sa.Connection,
        cursor: object,
        statement: str,
        parameters: object,
        context: object,
        executemany: bool,
    ) -> tuple[str, object]:
        if "FROM executions" in statement and not statement.startswith("EXPLAIN"):
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.extend(str(row[-1]) for row in rows)
        return statement, parameters

    try:
        async with database.write() as connection:
            await TransitionRepository(connection).unfinished_of_jobs(["a", "b"])
    finally:
        await database.dispose()
    assert any("ix_executions_unfinished" in plan for plan in plans), plans
