"""Policies a job carries: overlap, misfire, delivery, retries."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gql_scheduler.domain.errors import ErrorCollector, InvalidInput, UserInputError


class OverlapPolicy(enum.StrEnum):
    ALLOW = "ALLOW"
    SKIP = "SKIP"
    BUFFER_ONE = "BUFFER_ONE"
    CANCEL_RUNNING = "CANCEL_RUNNING"


class MisfirePolicy(enum.StrEnum):
    SKIP = "SKIP"
    RUN_ONCE = "RUN_ONCE"
    RUN_ALL = "RUN_ALL"
    FAIL = "FAIL"


class Delivery(enum.StrEnum):
    AT_LEAST_ONCE = "AT_LEAST_ONCE"
    AT_MOST_ONCE = "AT_MOST_ONCE"


MAX_ATTEMPTS_LIMIT = 100


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 1
    initial_delay_seconds: float = 1.0
    backoff_factor: float = 2.0
    max_delay_seconds: float = 300.0
    jitter: bool = True

    def validate(self) -> list[UserInputError]:
        errors = ErrorCollector()
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            errors.add(
                InvalidInput(
                    f"maxAttempts must be between 1 and {MAX_ATTEMPTS_LIMIT}",
                    field=["max_attempts"],
                )
            )
        if self.initial_delay_seconds < 0:
            errors.add(InvalidInput("must not be negative", field=["initial_delay_seconds"]))
        if self.backoff_factor < 1:
            errors.add(InvalidInput("must be at least 1", field=["backoff_factor"]))
        if self.max_delay_seconds < self.initial_delay_seconds:
            errors.add(
                InvalidInput(
                    "must not be less than initialDelaySeconds", field=["max_delay_seconds"]
                )
            )
        return errors.errors

    def to_dict(self) -> dict[str, object]:
        return {
            "max_attempts": self.max_attempts,
            "initial_delay_seconds": self.initial_delay_seconds,
            "backoff_factor": self.backoff_factor,
            "max_delay_seconds": self.max_delay_seconds,
            "jitter": self.jitter,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RetryPolicy:
        return cls(**data)  # type: ignore[arg-type]
