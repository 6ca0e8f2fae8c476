"""The event outbox (invariant 4): appended in the same transaction as the change it records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.events import EventKind, ExecutionEventType, JobEvent, JobEventType
from gql_scheduler.store.tables import events


class EventRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def append_job_event(
        self,
        event_type: JobEventType,
        *,
        job_id: str,
        at: datetime,
        actor: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> JobEvent:
        result = await self.connection.execute(
            events.insert()
            .values(
                kind=EventKind.JOB.value,
                type=event_type.value,
                at=at,
                job_id=job_id,
                actor=actor,
                payload=payload,
            )
            .returning(events.c.id)
        )
        event_id = result.scalar_one()
        return JobEvent(id=str(event_id), type=event_type, at=at, job_id=job_id, actor=actor)

    async def append_execution_events(
        self, items: Sequence[tuple[ExecutionEventType, str, str]], *, at: datetime
    ) -> None:
        """One event per (type, job id, execution id), in one statement for many rows."""
        rows = [
            {
                "kind": EventKind.EXECUTION.value,
                "type": event_type.value,
                "at": at,
                "job_id": job_id,
                "execution_id": int(execution_id),
            }
            for event_type, job_id, execution_id in items
        ]
        if rows:
            await self.connection.execute(events.insert(), rows)
