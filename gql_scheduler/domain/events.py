"""Events: every job and execution state change, written with the change (invariant 4)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class EventKind(enum.StrEnum):
    JOB = "JOB"
    EXECUTION = "EXECUTION"


class JobEventType(enum.StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    PAUSED = "PAUSED"
    RESUMED = "RESUMED"
    COMPLETED = "COMPLETED"


class ExecutionEventType(enum.StrEnum):
    QUEUED = "QUEUED"
    STARTED = "STARTED"
    RETRY_SCHEDULED = "RETRY_SCHEDULED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    MISSED = "MISSED"


@dataclass(frozen=True, slots=True)
class JobEvent:
    id: str
    type: JobEventType
    at: datetime
    job_id: str
    actor: str | None = None
