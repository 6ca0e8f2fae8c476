"""The event outbox (invariant 4): appended in the same transaction as the change it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.events import EventKind, ExecutionEventType, JobEvent, JobEventType
from gql_scheduler.domain.executions import Execution
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

    async def append_execution_event(
        self, event_type: ExecutionEventType, execution: Execution, *, at: datetime
    ) -> int:
        result = await self.connection.execute(
            events.insert()
            .values(
                kind=EventKind.EXECUTION.value,
                type=event_type.value,
                at=at,
                job_id=execution.job_id,
                execution_id=int(execution.id),
                payload={"status": execution.status.value, "attempt": execution.attempt},
            )
            .returning(events.c.id)
        )
        return int(result.scalar_one())
