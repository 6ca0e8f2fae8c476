"""Recovering executions whose instance was lost (invariant 3)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from gql_scheduler.domain.events import ExecutionEventType
from gql_scheduler.domain.executions import Execution
from gql_scheduler.domain.policies import MAX_ATTEMPTS_LIMIT, Delivery
from gql_scheduler.scheduling.finishes import retry_of
from gql_scheduler.store.database import Database
from gql_scheduler.store.jobs import JobRepository
from gql_scheduler.store.transitions import TransitionRepository

log = logging.getLogger("gql_scheduler.leases")


def lost_error(execution: Execution) -> str:
    lease = execution.lease_until.isoformat() if execution.lease_until else "?"
    return f"instance {execution.instance} lost: its lease expired at {lease}"


async def recover_expired_leases(database: Database, *, now: datetime) -> list[Execution]:
    """Fail every RUNNING execution with an expired lease; at-least-once jobs get a new
    attempt (returned, to be started). Any instance may do this; a race has one winner."""
    retries: list[Execution] = []
    async with database.write() as connection:
        transitions = TransitionRepository(connection)
        jobs = JobRepository(connection)
        for execution in await transitions.expired_leases(now=now):
            failed = await transitions.fail_lost(execution, now=now, error=lost_error(execution))
            if failed is None:
                continue
            log.warning(
                "recovered a lost execution",
                extra={"action": "lease_expired", "execution_id": execution.id},
            )
            job = await jobs.get(execution.job_id)
            if job is None or job.spec.delivery is not Delivery.AT_LEAST_ONCE:
                continue
            if failed.attempt >= MAX_ATTEMPTS_LIMIT:
                continue
            retry = await transitions.insert(
                retry_of(failed, run_after=now), now=now, event=ExecutionEventType.RETRY_SCHEDULED
            )
            if retry is not None:
                retries.append(retry)
    return retries


FENCED_ERROR = (
    "stopped: instance {instance} could not renew its lease (database unreachable) before "
    "it would expire, and another instance may then run it again"
)


class LeaseFence:
    """Whether this instance must stop its runs because their leases go unrenewed.

    Once a lease expires, any instance recovers the run (an at-least-once job runs again),
    so work still going here would then run twice. Renewals come every `renew_every`; when
    the next one would come after the leases written by the last successful one expire,
    the runs are stopped now, before anyone may take them over.
    """

    def __init__(self, *, now: datetime, lease_seconds: float, renew_every: float) -> None:
        self._renewed_at = now
        self._lease = timedelta(seconds=lease_seconds)
        self._renew_every = timedelta(seconds=renew_every)

    @property
    def renewal_timeout(self) -> float:
        """Seconds a renewal may take before it counts as failed: the next one is due by
        then, and a database that stops answering (no error, no reply) would otherwise
        hold the renewal past the leases' expiry, with the runs still going."""
        return self._renew_every.total_seconds()

    def renewed(self, at: datetime) -> None:
        self._renewed_at = at

    def must_stop(self, now: datetime) -> bool:
        return now + self._renew_every >= self._renewed_at + self._lease
