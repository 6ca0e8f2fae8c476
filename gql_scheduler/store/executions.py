"""The execution repository: history queries (the engine adds claims and transitions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.executions import (
    Execution,
    ExecutionFilter,
    ExecutionStatus,
    ExecutionTrigger,
)
from gql_scheduler.store import pagination
from gql_scheduler.store.tables import executions


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    executions: list[Execution]
    cursors: list[str]
    has_next_page: bool
    total_count: int


class ExecutionRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def get_many(self, execution_ids: Sequence[str]) -> dict[str, Execution]:
        numeric = [int(value) for value in execution_ids if value.isdigit()]
        if not numeric:
            return {}
        query = executions.select().where(executions.c.id.in_(numeric))
        rows = (await self.connection.execute(query)).mappings().all()
        return {str(row["id"]): execution_from_row(row) for row in rows}

    async def latest_for_jobs(self, job_ids: Sequence[str]) -> dict[str, Execution]:
        """The newest execution of each job, in one query (the lastExecution DataLoader)."""
        if not job_ids:
            return {}
        newest = (
            sa.select(sa.func.max(executions.c.id))
            .where(executions.c.job_id.in_(job_ids))
            .group_by(executions.c.job_id)
        )
        query = executions.select().where(executions.c.id.in_(newest))
        rows = (await self.connection.execute(query)).mappings().all()
        return {row["job_id"]: execution_from_row(row) for row in rows}

    async def list_page(
        self, execution_filter: ExecutionFilter, first: int, after: str | None
    ) -> ExecutionPage:
        """Newest first."""
        condition = _filter_condition(execution_filter)
        query = executions.select().where(condition)
        if after is not None:
            (after_id,) = pagination.decode_cursor(after, [int])
            query = query.where(executions.c.id < after_id)
        query = query.order_by(executions.c.id.desc()).limit(first + 1)
        rows = (await self.connection.execute(query)).mappings().all()
        total = await self.connection.scalar(
            sa.select(sa.func.count()).select_from(executions).where(condition)
        )
        page = [execution_from_row(row) for row in rows[:first]]
        cursors = [pagination.encode_cursor([int(item.id)]) for item in page]
        return ExecutionPage(page, cursors, len(rows) > first, int(total or 0))

    async def count_running(self) -> int:
        query = sa.select(sa.func.count()).where(
            executions.c.status == ExecutionStatus.RUNNING.value
        )
        return int(await self.connection.scalar(query) or 0)


def _filter_condition(execution_filter: ExecutionFilter) -> sa.ColumnElement[bool]:
    conditions: list[sa.ColumnElement[bool]] = [sa.true()]
    if execution_filter.job_id is not None:
        conditions.append(executions.c.job_id == execution_filter.job_id)
    if execution_filter.statuses:
        conditions.append(executions.c.status.in_([s.value for s in execution_filter.statuses]))
    if execution_filter.triggers:
        conditions.append(executions.c.trigger.in_([t.value for t in execution_filter.triggers]))
    if execution_filter.since is not None:
        conditions.append(executions.c.scheduled_for >= execution_filter.since)
    if execution_filter.until is not None:
        conditions.append(executions.c.scheduled_for < execution_filter.until)
    return sa.and_(*conditions)


def execution_from_row(row: sa.RowMapping) -> Execution:
    return Execution(
        id=str(row["id"]),
        job_id=row["job_id"],
        status=ExecutionStatus(row["status"]),
        trigger=ExecutionTrigger(row["trigger"]),
        attempt=row["attempt"],
        scheduled_for=row["scheduled_for"],
        queued_at=row["queued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        result_code=row["result_code"],
        output=row["output"],
        error=row["error"],
        instance=row["instance"],
        retry_of_id=str(row["retry_of_id"]) if row["retry_of_id"] is not None else None,
        lease_until=row["lease_until"],
    )
