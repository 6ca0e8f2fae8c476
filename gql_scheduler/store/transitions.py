"""Execution state changes: claims (invariant 2), starts, finishes and leases (invariant 3).

Every change is a conditional UPDATE or a conflict-free INSERT, so two instances racing for
the same row get one winner and one no-op, and each change writes its event in the same
transaction (invariant 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.events import ExecutionEventType
from gql_scheduler.domain.executions import (
    OCCURRENCE_TRIGGERS,
    Execution,
    ExecutionStatus,
    ExecutionTrigger,
)
from gql_scheduler.store.events import EventRepository
from gql_scheduler.store.executions import execution_from_row
from gql_scheduler.store.tables import OCCURRENCE_WHERE, executions

EVENT_OF_STATUS = {
    ExecutionStatus.QUEUED: ExecutionEventType.QUEUED,
    ExecutionStatus.RUNNING: ExecutionEventType.STARTED,
    ExecutionStatus.SUCCEEDED: ExecutionEventType.SUCCEEDED,
    ExecutionStatus.FAILED: ExecutionEventType.FAILED,
    ExecutionStatus.TIMED_OUT: ExecutionEventType.TIMED_OUT,
    ExecutionStatus.CANCELLED: ExecutionEventType.CANCELLED,
    ExecutionStatus.SKIPPED: ExecutionEventType.SKIPPED,
    ExecutionStatus.MISSED: ExecutionEventType.MISSED,
}


@dataclass(frozen=True, slots=True)
class NewExecution:
    job_id: str
    trigger: ExecutionTrigger
    scheduled_for: datetime
    idempotency_key: str
    status: ExecutionStatus = ExecutionStatus.QUEUED
    attempt: int = 1
    retry_of_id: str | None = None
    run_after: datetime | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    status: ExecutionStatus
    result_code: int | None = None
    output: str | None = None
    error: str | None = None


class TransitionRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.events = EventRepository(connection)

    async def insert(
        self,
        new: NewExecution,
        *,
        now: datetime,
        event: ExecutionEventType | None = None,
    ) -> Execution | None:
        """Insert an execution; an occurrence already claimed gives None (invariant 2)."""
        values = insert_values(new, now)
        if new.trigger in OCCURRENCE_TRIGGERS:
            statement: Any = self._insert_on_conflict(values)
        else:
            statement = executions.insert().values(**values)
        row = (await self.connection.execute(statement.returning(executions))).mappings().first()
        if row is None:
            return None
        execution = execution_from_row(row)
        self.events.append_execution_events(
            [(event or EVENT_OF_STATUS[new.status], execution.job_id, execution.id)], at=now
        )
        return execution

    def _insert_on_conflict(self, values: dict[str, Any]) -> Any:
        dialect = postgresql if self.connection.dialect.name == "postgresql" else sqlite
        return (
            dialect.insert(executions)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=["job_id", "scheduled_for"], index_where=OCCURRENCE_WHERE
            )
        )

    async def end_queued(
        self, execution_id: str, status: ExecutionStatus, *, now: datetime, error: str | None
    ) -> Execution | None:
        """QUEUED -> SKIPPED or CANCELLED without running."""
        return await self._transition(
            execution_id,
            EVENT_OF_STATUS[status],
            where=executions.c.status == ExecutionStatus.QUEUED.value,
            now=now,
            values={"status": status.value, "finished_at": now, "error": error},
        )

    async def fail_lost(
        self, execution: Execution, *, now: datetime, error: str
    ) -> Execution | None:
        """RUNNING with an expired lease -> FAILED, whoever owned it (invariant 3)."""
        return await self._transition(
            execution.id,
            ExecutionEventType.FAILED,
            where=sa.and_(
                executions.c.status == ExecutionStatus.RUNNING.value,
                executions.c.lease_until == execution.lease_until,
            ),
            now=now,
            values={
                "status": ExecutionStatus.FAILED.value,
                "finished_at": now,
                "error": error,
                "lease_until": None,
            },
        )

    async def _transition(
        self,
        execution_id: str,
        event_type: ExecutionEventType,
        *,
        where: sa.ColumnElement[bool],
        now: datetime,
        values: dict[str, Any],
    ) -> Execution | None:
        statement = (
            executions.update()
            .where(executions.c.id == int(execution_id), where)
            .values(**values)
            .returning(executions)
        )
        row = (await self.connection.execute(statement)).mappings().first()
        if row is None:
            return None
        execution = execution_from_row(row)
        self.events.append_execution_events([(event_type, execution.job_id, execution.id)], at=now)
        return execution

    async def renew_leases(
        self, execution_ids: list[str], *, instance: str, lease_until: datetime
    ) -> set[str]:
        """Extend this instance's leases; returns the ids whose cancellation was requested."""
        if not execution_ids:
            return set()
        owned = sa.and_(
            executions.c.id.in_([int(value) for value in execution_ids]),
            executions.c.instance == instance,
            executions.c.status == ExecutionStatus.RUNNING.value,
        )
        statement = (
            executions.update()
            .where(owned)
            .values(lease_until=lease_until)
            .returning(executions.c.id, executions.c.cancel_requested)
        )
        rows = (await self.connection.execute(statement)).all()
        return {str(row.id) for row in rows if row.cancel_requested}

    async def expired_leases(self, *, now: datetime, limit: int = 100) -> list[Execution]:
        query = (
            executions.select()
            .where(
                executions.c.status == ExecutionStatus.RUNNING.value,
                executions.c.lease_until < now,
            )
            .order_by(executions.c.lease_until)
            .limit(limit)
        )
        if self.connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = (await self.connection.execute(query)).mappings().all()
        return [execution_from_row(row) for row in rows]

    async def get(self, execution_id: str) -> Execution | None:
        if not execution_id.isdigit():
            return None
        query = executions.select().where(executions.c.id == int(execution_id))
        row = (await self.connection.execute(query)).mappings().first()
        return None if row is None else execution_from_row(row)

    async def request_cancel(self, execution_id: str) -> None:
        await self.connection.execute(
            executions.update()
            .where(executions.c.id == int(execution_id))
            .values(cancel_requested=True)
        )

    async def startable(
        self, *, now: datetime, limit: int, job_id: str | None = None
    ) -> list[tuple[str, str]]:
        """(id, job id) of QUEUED executions whose time has come, oldest first."""
        query = (
            sa.select(executions.c.id, executions.c.job_id)
            .where(
                executions.c.status == ExecutionStatus.QUEUED.value,
                sa.or_(executions.c.run_after.is_(None), executions.c.run_after <= now),
            )
            .order_by(executions.c.id)
            .limit(limit)
        )
        if job_id is not None:
            query = query.where(executions.c.job_id == job_id)
        return [(str(row.id), row.job_id) for row in await self.connection.execute(query)]


def insert_values(new: NewExecution, now: datetime) -> dict[str, Any]:
    terminal = new.status.is_terminal
    return {
        "job_id": new.job_id,
        "status": new.status.value,
        "trigger": new.trigger.value,
        "attempt": new.attempt,
        "scheduled_for": new.scheduled_for,
        "queued_at": now,
        "finished_at": now if terminal else None,
        "error": new.error,
        "retry_of_id": int(new.retry_of_id) if new.retry_of_id else None,
        "idempotency_key": new.idempotency_key,
        "run_after": new.run_after,
    }
