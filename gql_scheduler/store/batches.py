"""Multi-row statements for the engine's hot path (group commit).

One statement per kind of change per batch instead of one per execution: on SQLite every
statement is a round trip to the driver's thread, which would cap throughput far below
what the engine needs. The same invariants hold: occurrences are claimed by
INSERT ... ON CONFLICT DO NOTHING, starts and ends are conditional on the current status,
and every change writes its event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.events import ExecutionEventType
from gql_scheduler.domain.executions import Execution, ExecutionStatus
from gql_scheduler.store.events import EventRepository
from gql_scheduler.store.executions import execution_from_row
from gql_scheduler.store.tables import (
    OCCURRENCE_WHERE,
    UNFINISHED_WHERE,
    execution_output,
    executions,
)
from gql_scheduler.store.transitions import EVENT_OF_STATUS, NewExecution, Outcome, insert_values

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


class BatchTransitions:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def claim(self, new: Sequence[NewExecution], *, now: datetime) -> list[Claimed]:
        """Insert occurrences; those already claimed (by anyone) are left out."""
        if not new:
            return []
        # One statement compiled once (and cached); SQLAlchemy's "insertmanyvalues" sends
        # the rows in multi-row batches and brings back those actually inserted.
        statement = (
            self._dialect_insert()
            .on_conflict_do_nothing(
                index_elements=["job_id", "scheduled_for"], index_where=OCCURRENCE_WHERE
            )
            .returning(executions.c.id, executions.c.job_id, executions.c.scheduled_for)
        )
        rows = await self.connection.execute(statement, [insert_values(item, now) for item in new])
        claimed = [Claimed(str(row.id), row.job_id, row.scheduled_for) for row in rows]
        event = ExecutionEventType.QUEUED
        self._append_event_rows([(event, c.job_id, c.id) for c in claimed], at=now)
        return claimed

    async def get_many(self, execution_ids: Iterable[str]) -> dict[str, Execution]:
        found: dict[str, Execution] = {}
        for part in _chunks([int(value) for value in execution_ids]):
            query = executions.select().where(executions.c.id.in_(part))
            for row in (await self.connection.execute(query)).mappings():
                found[str(row["id"])] = execution_from_row(row)
        return found

    async def unfinished_of_jobs(self, job_ids: Iterable[str]) -> list[Execution]:
        """QUEUED and RUNNING executions of these jobs: what overlap decisions look at."""
        found: list[Execution] = []
        for part in _chunks(sorted(set(job_ids))):
            query = executions.select().where(executions.c.job_id.in_(part), UNFINISHED_WHERE)
            rows = (await self.connection.execute(query)).mappings().all()
            found.extend(execution_from_row(row) for row in rows)
        return found

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
        self._append_event_rows(
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
        self._append_event_rows([(event, job_id, key) for key, job_id in ended], at=now)
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
        self._append_event_rows(
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

    def _append_event_rows(
        self, items: Sequence[tuple[ExecutionEventType, str, str]], *, at: datetime
    ) -> None:
        EventRepository(self.connection).append_execution_events(items, at=at)

    async def save_output(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.connection.execute(execution_output.insert(), list(rows))

    def _dialect_insert(self) -> Any:
        dialect = postgresql if self.connection.dialect.name == "postgresql" else sqlite
        return dialect.insert(executions)


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
