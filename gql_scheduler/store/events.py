"""The event outbox (invariant 4): written in the same transaction as the change it records.

Events are buffered on the write transaction and inserted as its last statements, just
before the commit (`flush_pending`). That makes their ids follow commit order, which a
subscriber's `after` cursor relies on:
- SQLite has one writer at a time, so ids are handed out in commit order anyway;
- PostgreSQL hands out sequence values as transactions ask, and they commit in another
  order. A transaction-scoped advisory lock, taken just before the insert and held until
  the commit, puts event writers in line for that short last step only. Taken last, it
  cannot deadlock with row locks: its holder waits for nothing else.
On PostgreSQL the transaction also sends NOTIFY, delivered only if and when it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.events import (
    EVENTS_SIGNAL,
    NOTIFY_CHANNEL,
    Event,
    EventKind,
    ExecutionEvent,
    ExecutionEventType,
    JobEvent,
    JobEventType,
    cancel_signal,
    output_signal,
)
from gql_scheduler.domain.executions import Execution
from gql_scheduler.store.executions import execution_from_row
from gql_scheduler.store.tables import events, events_pruned, executions

# Any constant works: it only has to be the same in every instance.
EVENT_ORDER_LOCK_KEY = 0x67716C5F65767473  # "gql_evts"
# The execution option that carries a write transaction's PendingWrites.
PENDING_OPTION = "gql_scheduler_pending"


@dataclass
class PendingWrites:
    """What a write transaction will publish when it commits."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    signals: set[str] = field(default_factory=set)


def pending(connection: AsyncConnection) -> PendingWrites:
    """The buffer of the write transaction `connection` belongs to (Database.write)."""
    sync = connection.sync_connection
    found = sync.get_execution_options().get(PENDING_OPTION) if sync is not None else None
    if not isinstance(found, PendingWrites):
        raise RuntimeError("events are written only inside Database.write()")
    return found


async def flush_pending(connection: AsyncConnection, writes: PendingWrites) -> None:
    """Insert the buffered events and send the notification: the transaction's last step."""
    postgres = connection.dialect.name == "postgresql"
    if writes.rows:
        writes.signals.add(EVENTS_SIGNAL)
        if postgres:
            await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(EVENT_ORDER_LOCK_KEY)))
        await connection.execute(events.insert(), writes.rows)
    if postgres:
        for signal in sorted(writes.signals):
            await connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, signal)))


class EventRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    def append_job_event(
        self,
        event_type: JobEventType,
        *,
        job_id: str,
        at: datetime,
        actor: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        pending(self.connection).rows.append(
            _row(EventKind.JOB, event_type.value, at, job_id, None, actor, payload)
        )

    def append_execution_events(
        self, items: Sequence[tuple[ExecutionEventType, str, str]], *, at: datetime
    ) -> None:
        """One event per (type, job id, execution id)."""
        pending(self.connection).rows.extend(
            _row(EventKind.EXECUTION, event_type.value, at, job_id, int(execution_id))
            for event_type, job_id, execution_id in items
        )

    def signal_output(self, execution_id: str) -> None:
        pending(self.connection).signals.add(output_signal(execution_id))

    def signal_cancel(self, execution_id: str) -> None:
        pending(self.connection).signals.add(cancel_signal(execution_id))


def _row(
    kind: EventKind,
    event_type: str,
    at: datetime,
    job_id: str,
    execution_id: int | None,
    actor: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind.value,
        "type": event_type,
        "at": at,
        "job_id": job_id,
        "execution_id": execution_id,
        "actor": actor,
        "payload": payload,
    }


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events a reader wants: all of them unless narrowed."""

    kind: EventKind | None = None
    job_id: str | None = None
    types: frozenset[str] | None = None

    def condition(self) -> sa.ColumnElement[bool]:
        parts: list[sa.ColumnElement[bool]] = []
        if self.kind is not None:
            parts.append(events.c.kind == self.kind.value)
        if self.job_id is not None:
            parts.append(events.c.job_id == self.job_id)
        if self.types is not None:
            parts.append(events.c.type.in_(sorted(self.types)))
        return sa.and_(sa.true(), *parts)


class EventLog:
    """Reads the outbox in id order, and prunes it."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def last_id(self) -> int:
        value = await self.connection.scalar(sa.select(sa.func.max(events.c.id)))
        return int(value or 0)

    async def read(
        self, *, after: int, through: int | None = None, limit: int, query: EventQuery
    ) -> list[Event]:
        condition = sa.and_(events.c.id > after, query.condition())
        if through is not None:
            condition = sa.and_(condition, events.c.id <= through)
        statement = sa.select(events).where(condition).order_by(events.c.id).limit(limit)
        rows = (await self.connection.execute(statement)).mappings().all()
        return [event_from_row(row) for row in rows]

    async def read_with_executions(
        self, *, after: int, through: int | None = None, limit: int, query: EventQuery
    ) -> list[tuple[Event, Execution | None]]:
        """Like `read`, each event with the execution it is about, in one query."""
        condition = sa.and_(events.c.id > after, query.condition())
        if through is not None:
            condition = sa.and_(condition, events.c.id <= through)
        statement = (
            sa.select(events, *_EXECUTION_COLUMNS)
            .select_from(events.outerjoin(executions, executions.c.id == events.c.execution_id))
            .where(condition)
            .order_by(events.c.id)
            .limit(limit)
        )
        rows = (await self.connection.execute(statement)).mappings().all()
        return [(event_from_row(row), _execution_of(row)) for row in rows]

    async def pruned_through(self) -> int:
        value = await self.connection.scalar(
            sa.select(events_pruned.c.through_id).where(events_pruned.c.id == 1)
        )
        return int(value or 0)

    async def prune(self, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` of the oldest events older than `before`; returns how many.

        The newest event is always kept: SQLite would otherwise hand out its id again.
        """
        newest = await self.last_id()
        oldest_ids = (
            sa.select(events.c.id)
            .where(events.c.at < before, events.c.id < newest)
            .order_by(events.c.id)
            .limit(limit)
            .subquery()
        )
        through = await self.connection.scalar(sa.select(sa.func.max(oldest_ids.c.id)))
        if through is None:
            return 0
        result = await self.connection.execute(events.delete().where(events.c.id <= through))
        await self._record_pruned(int(through))
        return int(result.rowcount or 0)

    async def _record_pruned(self, through: int) -> None:
        updated = await self.connection.execute(
            events_pruned.update()
            .where(events_pruned.c.id == 1, events_pruned.c.through_id < through)
            .values(through_id=through)
        )
        if updated.rowcount == 0 and await self.pruned_through() == 0:
            await self.connection.execute(events_pruned.insert().values(id=1, through_id=through))


def event_from_row(row: sa.RowMapping) -> Event:
    if row["kind"] == EventKind.JOB.value:
        return JobEvent(
            id=str(row["id"]),
            type=JobEventType(row["type"]),
            at=row["at"],
            job_id=row["job_id"],
            actor=row["actor"],
        )
    return ExecutionEvent(
        id=str(row["id"]),
        type=ExecutionEventType(row["type"]),
        at=row["at"],
        job_id=row["job_id"],
        execution_id=str(row["execution_id"]),
    )


_EXECUTION_PREFIX = "run__"  # not "execution_": events has an execution_id
_EXECUTION_COLUMNS = [column.label(_EXECUTION_PREFIX + column.name) for column in executions.c]


def _execution_of(row: sa.RowMapping) -> Execution | None:
    if row[_EXECUTION_PREFIX + "id"] is None:
        return None
    size = len(_EXECUTION_PREFIX)
    values = {key[size:]: value for key, value in row.items() if key.startswith(_EXECUTION_PREFIX)}
    return execution_from_row(values)  # type: ignore[arg-type]
