"""Events: every job and execution state change, written with the change (invariant 4)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gql_scheduler.domain.errors import InvalidInput
from gql_scheduler.domain.executions import ExecutionStatus


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


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    id: str
    type: ExecutionEventType
    at: datetime
    job_id: str
    execution_id: str


Event = JobEvent | ExecutionEvent

# The execution's status right after each event: what a `statuses` filter matches.
STATUS_AFTER_EVENT = {
    ExecutionEventType.QUEUED: ExecutionStatus.QUEUED,
    ExecutionEventType.STARTED: ExecutionStatus.RUNNING,
    # A retry is a new QUEUED execution that waits for its backoff.
    ExecutionEventType.RETRY_SCHEDULED: ExecutionStatus.QUEUED,
    ExecutionEventType.SUCCEEDED: ExecutionStatus.SUCCEEDED,
    ExecutionEventType.FAILED: ExecutionStatus.FAILED,
    ExecutionEventType.TIMED_OUT: ExecutionStatus.TIMED_OUT,
    ExecutionEventType.CANCELLED: ExecutionStatus.CANCELLED,
    ExecutionEventType.SKIPPED: ExecutionStatus.SKIPPED,
    ExecutionEventType.MISSED: ExecutionStatus.MISSED,
}


# The event that records an execution reaching each status.
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


def event_types_for(statuses: Iterable[ExecutionStatus]) -> frozenset[ExecutionEventType]:
    wanted = set(statuses)
    return frozenset(kind for kind, status in STATUS_AFTER_EVENT.items() if status in wanted)


def parse_cursor(after: str | None, *, field: str = "after") -> int | None:
    """An event id given back by a client; ids are decimal and start at 1."""
    if after is None:
        return None
    text = after.strip()
    if not text.isdecimal() or len(text) > MAX_CURSOR_DIGITS:
        raise InvalidInput(
            f"{field} must be an event id as given by an earlier event", field=[field]
        )
    return int(text)


MAX_CURSOR_DIGITS = 19  # a signed 64-bit id


# Signals: what a committed write tells every instance (PostgreSQL NOTIFY payloads on
# NOTIFY_CHANNEL, or in-process calls). They carry no data; readers go to the outbox.
NOTIFY_CHANNEL = "gql_scheduler"
EVENTS_SIGNAL = "events"
# Sent by a broker that may have missed signals (it reconnected): read everything new.
RESYNC_SIGNAL = "resync"
_OUTPUT_SIGNAL = "output:"
_CANCEL_SIGNAL = "cancel:"


def output_signal(execution_id: str) -> str:
    """New output chunks of this execution were committed."""
    return _OUTPUT_SIGNAL + execution_id


def cancel_signal(execution_id: str) -> str:
    """Someone asked to cancel this execution: its owner stops it now, not at renewal."""
    return _CANCEL_SIGNAL + execution_id


def output_signal_execution(signal: str) -> str | None:
    return _execution_of(signal, _OUTPUT_SIGNAL)


def cancel_signal_execution(signal: str) -> str | None:
    return _execution_of(signal, _CANCEL_SIGNAL)


def _execution_of(signal: str, prefix: str) -> str | None:
    return signal[len(prefix) :] if signal.startswith(prefix) else None
