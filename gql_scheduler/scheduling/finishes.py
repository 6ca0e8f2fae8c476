"""Recording how runs ended, and scheduling their retries, a batch per transaction."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.events import ExecutionEventType
from gql_scheduler.domain.executions import (
    Execution,
    ExecutionStatus,
    ExecutionTrigger,
    NewExecution,
    Outcome,
)
from gql_scheduler.domain.jobs import Job
from gql_scheduler.domain.output import OutputChunk
from gql_scheduler.domain.policies import Delivery
from gql_scheduler.domain.retries import retry_delay, should_retry
from gql_scheduler.store.database import Database
from gql_scheduler.store.output_chunks import chunk_row
from gql_scheduler.store.transitions import Finished, TransitionRepository

log = logging.getLogger("gql_scheduler.dispatcher")

_RETRYABLE = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT)


@dataclass(frozen=True, slots=True)
class FinishRequest:
    execution: Execution
    job: Job
    outcome: Outcome
    chunks: Sequence[OutputChunk]
    # The run was cut short because its instance stopped, not by its own failure.
    interrupted: bool = False


def retry_of(execution: Execution, *, run_after: datetime) -> NewExecution:
    return NewExecution(
        job_id=execution.job_id,
        trigger=ExecutionTrigger.RETRY,
        scheduled_for=run_after,
        idempotency_key=execution.idempotency_key,
        attempt=execution.attempt + 1,
        retry_of_id=execution.id,
        run_after=run_after,
    )


class Finisher:
    def __init__(
        self, database: Database, clock: Clock, instance: str, random_unit: Callable[[], float]
    ) -> None:
        self.database = database
        self.clock = clock
        self.instance = instance
        self.random_unit = random_unit

    async def finish(self, requests: list[FinishRequest]) -> list[Execution | None]:
        """Record each outcome; for each request, the retry scheduled for it, if any.

        An interrupted run of an at-least-once job runs again whatever its attempts, as a
        lost one would.
        """
        async with self.database.write() as connection:
            now = self.clock.now()  # under the write lock, so times order like the changes
            transitions = TransitionRepository(connection)
            kept = await transitions.finish(
                [Finished(r.execution, r.outcome) for r in requests],
                instance=self.instance,
                now=now,
            )
            kept_ids = {item.execution.id for item in kept}
            self._warn_lost(requests, kept_ids)
            await transitions.save_output(
                [
                    chunk_row(r.execution.id, chunk)
                    for r in requests
                    if r.execution.id in kept_ids
                    for chunk in r.chunks
                ]
            )
            retries: list[Execution | None] = []
            for request in requests:
                retry = None
                if request.execution.id in kept_ids and self._retries(request):
                    retry = await self._schedule_retry(transitions, request, now)
                retries.append(retry)
        return retries

    async def _schedule_retry(
        self, transitions: TransitionRepository, request: FinishRequest, now: datetime
    ) -> Execution | None:
        if request.interrupted:
            # Not the job's failure (the instance stopped, or lost its database): the same
            # attempt again, at once, on any instance, leaving the retry policy untouched.
            again = dataclasses.replace(
                retry_of(request.execution, run_after=now), attempt=request.execution.attempt
            )
            return await transitions.insert(
                again, now=now, event=ExecutionEventType.RETRY_SCHEDULED
            )
        policy = request.job.spec.retry
        delay = retry_delay(policy, request.execution.attempt, self.random_unit())
        return await transitions.insert(
            retry_of(request.execution, run_after=now + delay),
            now=now,
            event=ExecutionEventType.RETRY_SCHEDULED,
        )

    @staticmethod
    def _retries(request: FinishRequest) -> bool:
        spec = request.job.spec
        if request.interrupted:
            return spec.delivery is Delivery.AT_LEAST_ONCE
        return request.outcome.status in _RETRYABLE and should_retry(
            spec.retry, spec.delivery, request.execution.attempt
        )

    @staticmethod
    def _warn_lost(requests: list[FinishRequest], kept_ids: set[str]) -> None:
        for request in requests:
            if request.execution.id not in kept_ids:
                log.warning(
                    "execution was no longer ours to finish",
                    extra={"action": "finish_lost", "execution_id": request.execution.id},
                )
