"""Jobs: what to run, when, and under which policies."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from gql_scheduler.domain.policies import Delivery, MisfirePolicy, OverlapPolicy, RetryPolicy

if TYPE_CHECKING:
    from gql_scheduler.domain.actions import Action
    from gql_scheduler.domain.schedules import Schedule


class JobState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"


class JobOrder(enum.StrEnum):
    NAME_ASC = "NAME_ASC"
    CREATED_DESC = "CREATED_DESC"
    NEXT_RUN_ASC = "NEXT_RUN_ASC"


MAX_NAME_LENGTH = 200
MAX_TAGS = 50
MAX_TAG_LENGTH = 100


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a user decides about a job; validated by the service before storing."""

    name: str
    schedules: tuple[Schedule, ...]
    action: Action
    description: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    jitter_seconds: float = 0.0
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    misfire_policy: MisfirePolicy | None = None
    catch_up_window_seconds: float | None = None
    delivery: Delivery = Delivery.AT_LEAST_ONCE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_seconds: float | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job: its spec plus what the service and the engine keep about it."""

    id: str
    spec: JobSpec
    state: JobState
    created_at: datetime
    updated_at: datetime
    pause_note: str | None = None
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    # Invariant 5: the last occurrence this job fired; restart recovery starts from here.
    watermark: datetime | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class JobFilter:
    states: tuple[JobState, ...] | None = None
    tags: tuple[str, ...] | None = None
    search: str | None = None
