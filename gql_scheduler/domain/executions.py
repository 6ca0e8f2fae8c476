"""Executions: one run (or non-run) of a job, and the statuses it moves through."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ExecutionStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    MISSED = "MISSED"

    @property
    def is_terminal(self) -> bool:
        return self not in (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING)


class ExecutionTrigger(enum.StrEnum):
    SCHEDULE = "SCHEDULE"
    MANUAL = "MANUAL"
    RETRY = "RETRY"
    CATCH_UP = "CATCH_UP"
    BACKFILL = "BACKFILL"


# Executions created for a schedule occurrence: at most one per (job, scheduled_for)
# (invariant 2). Manual runs and retries are not occurrences and are never deduplicated.
OCCURRENCE_TRIGGERS = (
    ExecutionTrigger.SCHEDULE,
    ExecutionTrigger.CATCH_UP,
    ExecutionTrigger.BACKFILL,
)


@dataclass(frozen=True, slots=True)
class Execution:
    id: str
    job_id: str
    status: ExecutionStatus
    trigger: ExecutionTrigger
    attempt: int
    scheduled_for: datetime
    queued_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result_code: int | None = None
    output: str | None = None
    error: str | None = None
    instance: str | None = None
    retry_of_id: str | None = None
    lease_until: datetime | None = None
    idempotency_key: str = ""
    run_after: datetime | None = None
    cancel_requested: bool = False
    triggered_by: str | None = None  # who asked for it; None: the engine by itself

    @property
    def drift_ms(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.started_at - self.scheduled_for).total_seconds() * 1000

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    job_id: str | None = None
    statuses: tuple[ExecutionStatus, ...] | None = None
    triggers: tuple[ExecutionTrigger, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ExecutionStats:
    total: int
    succeeded: int
    failed: int
    avg_duration_ms: float | None
    p95_duration_ms: float | None
    avg_drift_ms: float | None
    p95_drift_ms: float | None
    last_success_at: datetime | None
    last_failure_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewExecution:
    """An execution about to be created: an occurrence claimed, a manual run, a retry."""

    job_id: str
    trigger: ExecutionTrigger
    scheduled_for: datetime
    idempotency_key: str
    status: ExecutionStatus = ExecutionStatus.QUEUED
    attempt: int = 1
    retry_of_id: str | None = None
    run_after: datetime | None = None
    error: str | None = None
    triggered_by: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended, as it is recorded."""

    status: ExecutionStatus
    result_code: int | None = None
    output: str | None = None
    error: str | None = None
