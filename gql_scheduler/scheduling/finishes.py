"""Recording how a run ended, and scheduling its retry, in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from gql_scheduler.actions.output import OutputChunk
from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.events import ExecutionEventType
from gql_scheduler.domain.executions import Execution, ExecutionStatus, ExecutionTrigger
from gql_scheduler.domain.jobs import Job
from gql_scheduler.domain.policies import Delivery
from gql_scheduler.domain.retries import retry_delay, should_retry
from gql_scheduler.store.engine import Database
from gql_scheduler.store.transitions import NewExecution, Outcome, TransitionRepository

log = logging.getLogger("gql_scheduler.dispatcher")

_RETRYABLE = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT)


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

    async def finish(
        self,
        execution: Execution,
        job: Job,
        outcome: Outcome,
        chunks: Sequence[OutputChunk],
        *,
        interrupted: bool = False,
    ) -> Execution | None:
        """Record the outcome; returns the retry execution when one was scheduled.

        An interrupted run (its instance stopped) of an at-least-once job runs again
        whatever its attempts, as a lost one would.
        """
        async with self.database.write() as connection:
            now = self.clock.now()  # under the write lock, so times order like the changes
            transitions = TransitionRepository(connection)
            finished = await transitions.finish(
                execution.id, outcome, instance=self.instance, now=now
            )
            if finished is None:
                log.warning(
                    "execution was no longer ours to finish",
                    extra={"action": "finish_lost", "execution_id": execution.id},
                )
                return None
            await transitions.save_output(execution.id, [_chunk_row(c) for c in chunks])
            if not self._retries(job, finished, interrupted):
                return None
            delay = retry_delay(job.spec.retry, finished.attempt, self.random_unit())
            return await transitions.insert(
                retry_of(finished, run_after=now + delay),
                now=now,
                event=ExecutionEventType.RETRY_SCHEDULED,
            )

    @staticmethod
    def _retries(job: Job, finished: Execution, interrupted: bool) -> bool:
        if interrupted:
            return job.spec.delivery is Delivery.AT_LEAST_ONCE
        return finished.status in _RETRYABLE and should_retry(
            job.spec.retry, job.spec.delivery, finished.attempt
        )


def _chunk_row(chunk: OutputChunk) -> dict[str, object]:
    return {"seq": chunk.seq, "stream": chunk.stream.value, "text": chunk.text, "at": chunk.at}
