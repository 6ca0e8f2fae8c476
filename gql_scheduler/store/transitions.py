"""Execution state changes: claims (invariant 2), starts, finishes and leases (invariant 3).

One repository for every change, whether it concerns one execution (a manual run, a
cancel, a lost lease) or a batch of them (the engine's group commits). Batches are one
multi-row statement per kind of change: on SQLite every statement is a round trip to the
driver's thread, which would cap throughput far below what the engine needs.

Every change is a conditional UPDATE or a conflict-free INSERT, so two instances racing for
the same row get one winner and one no-op, and each change writes its event in the same
transaction (invariant 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.events import EVENT_OF_STATUS, ExecutionEventType
from gql_scheduler.domain.executions import (
    OCCURRENCE_TRIGGERS,
    Execution,
    ExecutionStatus,
    NewExecution,
    Outcome,
)
from gql_scheduler.store.events import EventRepository
from gql_scheduler.store.executions import execution_from_row
from gql_scheduler.store.tables import (
    OCCURRENCE_WHERE,
    UNFINISHED_WHERE,
    execution_output,
    executions,
)

# Rows per statement: far below SQLite's limit of 32,766 bound values.
CHUNK = 400


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    job_id: str
    scheduled_for: datetime


@dataclass(frozen=True, slots=True)
class Finished:
    execution: Execution
    outcome: Outcome


class TransitionRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.events = EventRepository(connection)

    # ------------------------------------------------------------------ creating
    async def insert(
        self,
        new: NewExecution,
        *,
        now: datetime,
        event: ExecutionEventType | None = None,
    ) -> Execution | None:
        """Insert one execution; an occurrence already claimed gives None (invariant 2)."""
        values = insert_values(new, now)
        if new.trigger in OCCURRENCE_TRIGGERS:
            statement: Any = self._insert_occurrence().values(**values)
        else:
            statement = executions.insert().values(**values)
        row = (await self.connection.execute(statement.returning(executions))).mappings().first()
        if row is None:
            return None
        execution = execution_from_row(row)
        self._append_events(
            [(event or EVENT_OF_STATUS[new.status], execution.job_id, execution.id)], at=now
        )
        return execution

    async def claim(self, new: Sequence[NewExecution], *, now: datetime) -> list[Claimed]:
        """Insert occurrences; those already claimed (by anyone) are left out."""
        if not new:
            return []
        # One statement compiled once (and cached); SQLAlchemy's "insertmanyvalues" sends
        # the rows in multi-row batches and brings back those actually inserted.
        statement = self._insert_occurrence().returning(
            executions.c.id, executions.c.job_id, executions.c.scheduled_for
        )
        rows = await self.connection.execute(statement, [insert_values(item, now) for item in new])
        claimed = [Claimed(str(row.id), row.job_id, row.scheduled_for) for row in rows]
        event = ExecutionEventType.QUEUED
        self._append_events([(event, c.job_id, c.id) for c in claimed], at=now)
        return claimed

    def _insert_occurrence(self) -> Any:
        dialect = postgresql if self.connection.dialect.name == "postgresql" else sqlite
        return dialect.insert(executions).on_conflict_do_nothing(
            index_elements=["job_id", "scheduled_for"], index_where=OCCURRENCE_WHERE
        )

    # ------------------------------------------------------------------ starting
    async def start(
        self, execution_ids: Sequence[str], *, instance: str, lease_until: datetime, now: datetime
    ) -> list[str]:
        """QUEUED -> RUNNING for those still QUEUED (the others started elsewhere): their ids."""
        values = {
            "status": ExecutionStatus.RUNNING.value,
            "instance": instance,
            "lease_until": lease_until,
            "started_at": now,
        }
        started = await self._update_queued(execution_ids, values)
        self._append_events(
            [(ExecutionEventType.STARTED, job_id, key) for key, job_id in started], at=now
        )
        return [key for key, _ in started]

    async def end_queued(
        self, execution_ids: Sequence[str], status: ExecutionStatus, *, error: str, now: datetime
    ) -> list[str]:
        """QUEUED -> SKIPPED or CANCELLED without running: the ids that changed."""
        values = {"status": status.value, "finished_at": now, "error": error}
        ended = await self._update_queued(execution_ids, values)
        event = EVENT_OF_STATUS[status]
        self._append_events([(event, job_id, key) for key, job_id in ended], at=now)
        return [key for key, _ in ended]

    async def _update_queued(
        self, execution_ids: Sequence[str], values: dict[str, Any]
    ) -> list[tuple[str, str]]:
        """Change those still QUEUED (a conditional update: a race has one winner)."""
        changed: list[tuple[str, str]] = []
        for part in _chunks([int(value) for value in execution_ids]):
            statement = (
                executions.update()
                .where(
                    executions.c.id.in_(part),
                    executions.c.status == ExecutionStatus.QUEUED.value,
                )
                .values(**values)
                .returning(executions.c.id, executions.c.job_id)
            )
            rows = (await self.connection.execute(statement)).all()
            changed.extend((str(row.id), row.job_id) for row in rows)
        return changed

    # ------------------------------------------------------------------ finishing
    async def finish(
        self, finished: Sequence[Finished], *, instance: str, now: datetime
    ) -> list[Finished]:
        """RUNNING -> terminal for the runs this instance still owns; returns those."""
        owned = await self._still_owned([item.execution.id for item in finished], instance)
        kept = [item for item in finished if item.execution.id in owned]
        if kept:
            await self.connection.execute(
                executions.update()
                .where(
                    executions.c.id == sa.bindparam("row_id"),
                    executions.c.status == ExecutionStatus.RUNNING.value,
                )
                .values(
                    status=sa.bindparam("new_status"),
                    result_code=sa.bindparam("new_code"),
                    output=sa.bindparam("new_output"),
                    error=sa.bindparam("new_error"),
                    finished_at=now,
                    lease_until=None,
                ),
                [_finish_parameters(item) for item in kept],
            )
        self._append_events(
            [
                (EVENT_OF_STATUS[item.outcome.status], item.execution.job_id, item.execution.id)
                for item in kept
            ],
            at=now,
        )
        return kept

    async def _still_owned(self, execution_ids: Sequence[str], instance: str) -> set[str]:
        owned: set[str] = set()
        for part in _chunks([int(value) for value in execution_ids]):
            query = sa.select(executions.c.id).where(
                executions.c.id.in_(part),
                executions.c.status == ExecutionStatus.RUNNING.value,
                executions.c.instance == instance,
            )
            if self.connection.dialect.name == "postgresql":
                query = query.with_for_update()
            owned.update(str(value) for value in (await self.connection.scalars(query)).all())
        return owned

    async def save_output(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.connection.execute(execution_output.insert(), list(rows))

    async def fail_lost(
        self, execution: Execution, *, now: datetime, error: str
    ) -> Execution | None:
        """RUNNING with an expired lease -> FAILED, whoever owned it (invariant 3)."""
        statement = (
            executions.update()
            .where(
                executions.c.id == int(execution.id),
                executions.c.status == ExecutionStatus.RUNNING.value,
                executions.c.lease_until == execution.lease_until,
            )
            .values(
                status=ExecutionStatus.FAILED.value, finished_at=now, error=error, lease_until=None
            )
            .returning(executions)
        )
        row = (await self.connection.execute(statement)).mappings().first()
        if row is None:
            return None
        failed = execution_from_row(row)
        self._append_events([(ExecutionEventType.FAILED, failed.job_id, failed.id)], at=now)
        return failed

    # ------------------------------------------------------------------ leases and cancels
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

    async def request_cancel(self, execution_id: str) -> None:
        await self.connection.execute(
            executions.update()
            .where(executions.c.id == int(execution_id))
            .values(cancel_requested=True)
        )

    # ------------------------------------------------------------------ what decisions read
    async def unfinished_of_jobs(self, job_ids: Iterable[str]) -> list[Execution]:
        """QUEUED and RUNNING executions of these jobs: what overlap decisions look at."""
        found: list[Execution] = []
        for part in _chunks(sorted(set(job_ids))):
            query = executions.select().where(executions.c.job_id.in_(part), UNFINISHED_WHERE)
            rows = (await self.connection.execute(query)).mappings().all()
            found.extend(execution_from_row(row) for row in rows)
        return found

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

    def _append_events(
        self, items: Sequence[tuple[ExecutionEventType, str, str]], *, at: datetime
    ) -> None:
        self.events.append_execution_events(items, at=at)


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
        "triggered_by": new.triggered_by,
    }


def _finish_parameters(item: Finished) -> dict[str, Any]:
    outcome = item.outcome
    return {
        "row_id": int(item.execution.id),
        "new_status": outcome.status.value,
        "new_code": outcome.result_code,
        "new_output": outcome.output,
        "new_error": outcome.error,
    }


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
