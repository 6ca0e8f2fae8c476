"""The execution repository: history queries (store/transitions.py writes the changes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.executions import (
    Execution,
    ExecutionFilter,
    ExecutionStats,
    ExecutionStatus,
    ExecutionTrigger,
)
from gql_scheduler.domain.pages import Page
from gql_scheduler.store import pagination
from gql_scheduler.store.tables import OCCURRENCE_WHERE, executions

# Occurrences per statement: far below SQLite's limit of 32,766 bound values.
_CHUNK = 400


class ExecutionRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def recorded_occurrences(
        self, job_id: str, *, after: datetime, through: datetime
    ) -> set[datetime]:
        """The job's occurrences in (after, through] that already have an execution."""
        query = sa.select(executions.c.scheduled_for).where(
            executions.c.job_id == job_id,
            executions.c.scheduled_for > after,
            executions.c.scheduled_for <= through,
            OCCURRENCE_WHERE,
        )
        return set((await self.connection.scalars(query)).all())

    async def recorded_among(
        self, occurrences: Sequence[tuple[str, datetime]]
    ) -> set[tuple[str, datetime]]:
        """Those of the (job id, scheduled time) occurrences that have an execution."""
        found: set[tuple[str, datetime]] = set()
        for start in range(0, len(occurrences), _CHUNK):
            part = occurrences[start : start + _CHUNK]
            query = sa.select(executions.c.job_id, executions.c.scheduled_for).where(
                executions.c.job_id.in_({job_id for job_id, _ in part}),
                executions.c.scheduled_for >= min(at for _, at in part),
                executions.c.scheduled_for <= max(at for _, at in part),
                OCCURRENCE_WHERE,
            )
            found.update(
                (row.job_id, row.scheduled_for) for row in await self.connection.execute(query)
            )
        return found & set(occurrences)

    async def count_occurrences(self, job_id: str, *, after: datetime, before: datetime) -> int:
        """How many of the job's occurrences strictly between the two instants are recorded."""
        query = (
            sa.select(sa.func.count())
            .select_from(executions)
            .where(
                executions.c.job_id == job_id,
                executions.c.scheduled_for > after,
                executions.c.scheduled_for < before,
                OCCURRENCE_WHERE,
            )
        )
        return int(await self.connection.scalar(query) or 0)

    async def get(self, execution_id: str) -> Execution | None:
        if not execution_id.isdigit():
            return None
        query = executions.select().where(executions.c.id == int(execution_id))
        row = (await self.connection.execute(query)).mappings().first()
        return None if row is None else execution_from_row(row)

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
    ) -> Page[Execution]:
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
        return Page(page, cursors, len(rows) > first, int(total or 0))

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
        idempotency_key=row["idempotency_key"],
        run_after=row["run_after"],
        cancel_requested=bool(row["cancel_requested"]),
        triggered_by=row["triggered_by"],
    )


_FAILURES = (ExecutionStatus.FAILED.value, ExecutionStatus.TIMED_OUT.value)


def _millis_between(
    dialect: str, start: sa.ColumnElement[Any], end: sa.ColumnElement[Any]
) -> sa.ColumnElement[float]:
    if dialect == "postgresql":
        return sa.type_coerce(sa.extract("epoch", end - start), sa.Float) * 1000.0
    # SQLite keeps instants as text; julianday() reads them with sub-millisecond precision.
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86_400_000.0


async def job_stats(
    connection: AsyncConnection, job_id: str, since: datetime | None
) -> ExecutionStats:
    """Counts, success and the avg/p95 of duration and drift, all computed in SQL."""
    scope = [executions.c.job_id == job_id]
    if since is not None:
        scope.append(executions.c.scheduled_for >= since)
    dialect = connection.dialect.name
    duration = _millis_between(dialect, executions.c.started_at, executions.c.finished_at)
    drift = _millis_between(dialect, executions.c.scheduled_for, executions.c.started_at)
    status = executions.c.status
    succeeded = status == ExecutionStatus.SUCCEEDED.value
    failed = status.in_(_FAILURES)
    row = (
        await connection.execute(
            sa.select(
                sa.func.count(),
                sa.func.count().filter(succeeded),
                sa.func.count().filter(failed),
                sa.func.avg(duration).filter(executions.c.finished_at.is_not(None)),
                sa.func.avg(drift).filter(executions.c.started_at.is_not(None)),
                sa.func.max(executions.c.finished_at).filter(succeeded),
                sa.func.max(executions.c.finished_at).filter(failed),
            ).where(*scope)
        )
    ).one()
    finished = sa.and_(
        *scope, executions.c.finished_at.is_not(None), executions.c.started_at.is_not(None)
    )
    started = sa.and_(*scope, executions.c.started_at.is_not(None))
    return ExecutionStats(
        total=int(row[0]),
        succeeded=int(row[1]),
        failed=int(row[2]),
        avg_duration_ms=_float(row[3]),
        p95_duration_ms=await _p95(connection, duration, finished),
        avg_drift_ms=_float(row[4]),
        p95_drift_ms=await _p95(connection, drift, started),
        last_success_at=_aware(row[5]),
        last_failure_at=_aware(row[6]),
    )


async def _p95(
    connection: AsyncConnection, value: sa.ColumnElement[float], where: sa.ColumnElement[bool]
) -> float | None:
    """Nearest-rank 95th percentile, portable: count, then read the row at that rank."""
    count = int(await connection.scalar(sa.select(sa.func.count()).where(where)) or 0)
    if count == 0:
        return None
    rank = math.ceil(0.95 * count) - 1
    query = sa.select(value).where(where).order_by(value).offset(rank).limit(1)
    return _float(await connection.scalar(query))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _aware(value: Any) -> datetime | None:
    """Aggregates bypass the column type, so SQLite hands back text or naive values."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
