"""Direct looks at the database behind the API, for assertions the API cannot express."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from gql_scheduler.domain.executions import ExecutionStatus, ExecutionTrigger
from gql_scheduler.store.database import Database
from gql_scheduler.store.tables import events, executions, job_tags, jobs


async def table_counts(database: Database) -> dict[str, int]:
    counts = {}
    async with database.read() as connection:
        for table in (jobs, job_tags, events, executions):
            counts[table.name] = int(
                await connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0
            )
    return counts


async def job_events(database: Database) -> list[tuple[int, str, str | None]]:
    async with database.read() as connection:
        rows = await connection.execute(
            sa.select(events.c.id, events.c.type, events.c.job_id)
            .where(events.c.kind == "JOB")
            .order_by(events.c.id)
        )
        return [(row.id, row.type, row.job_id) for row in rows]


async def insert_execution(
    database: Database,
    job_id: str,
    scheduled_for: datetime,
    *,
    status: ExecutionStatus = ExecutionStatus.SUCCEEDED,
    trigger: ExecutionTrigger = ExecutionTrigger.SCHEDULE,
    **values: Any,
) -> int:
    """Stands in for the engine, which does not exist yet, to give the history queries rows."""
    async with database.write() as connection:
        result = await connection.execute(
            executions.insert()
            .values(
                job_id=job_id,
                status=status.value,
                trigger=trigger.value,
                attempt=1,
                scheduled_for=scheduled_for,
                queued_at=scheduled_for,
                **values,
            )
            .returning(executions.c.id)
        )
        return int(result.scalar_one())


async def insert_lost_run(database: Database, job_id: str, *, ago: timedelta) -> int:
    """A RUNNING execution of an instance that died: its lease expired a while ago."""
    past = datetime.now(UTC) - ago
    return await insert_execution(
        database,
        job_id,
        past,
        status=ExecutionStatus.RUNNING,
        instance="ghost",
        started_at=past,
        lease_until=past + timedelta(seconds=1),
    )


async def execution_events(database: Database, execution_id: str) -> list[str]:
    async with database.read() as connection:
        rows = await connection.execute(
            sa.select(events.c.type)
            .where(events.c.kind == "EXECUTION", events.c.execution_id == int(execution_id))
            .order_by(events.c.id)
        )
        return [row.type for row in rows]
