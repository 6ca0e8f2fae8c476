"""Runs executions: the global limit, overlap policies, timeouts, retries, cancellation and
leases (invariant 3). Any instance may start any QUEUED execution: the conditional
QUEUED -> RUNNING update is the claim, so a race has one winner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gql_scheduler.actions.base import ActionRunner, RunContext
from gql_scheduler.actions.output import OutputCollector
from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.executions import Execution, ExecutionStatus
from gql_scheduler.domain.jobs import Job
from gql_scheduler.scheduling.batching import GroupCommitter
from gql_scheduler.scheduling.finishes import Finisher, FinishRequest
from gql_scheduler.scheduling.starts import JobCache, StartRequest, StartResult, start_batch
from gql_scheduler.store.engine import Database
from gql_scheduler.store.transitions import Outcome, TransitionRepository

log = logging.getLogger("gql_scheduler.dispatcher")

REPLACED = "cancelled: a newer run of the job replaced it"


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    instance: str
    lease_seconds: float
    max_concurrent: int
    output_limit_bytes: int
    # How long a stopping instance lets running executions finish before cancelling them.
    stop_grace_seconds: float = 10.0


@dataclass
class _Run:
    execution: Execution
    task: asyncio.Task[None]
    cancel_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Dispatcher:
    def __init__(
        self,
        database: Database,
        runners: ActionRunner,
        clock: Clock,
        settings: DispatchSettings,
        *,
        random_unit: Callable[[], float] = random.random,
    ) -> None:
        self.database = database
        self.runners = runners
        self.clock = clock
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.max_concurrent)
        self._runs: dict[str, _Run] = {}
        self._pending: set[str] = set()
        # Jobs with a run waiting here for another to end (BUFFER_ONE, CANCEL_RUNNING,
        # backfills): only their ends need to look for the next run to start.
        self._waited_on: set[str] = set()
        # Set once a submitted execution's start was decided (started, skipped, waiting).
        self._decided: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._job_cache = JobCache()
        finisher = Finisher(database, clock, settings.instance, random_unit)
        # For the runs cut short by a stop, which must not wait in a batch being cancelled.
        self._finisher_direct = finisher
        # Group commit: concurrent starts (and ends) share one transaction.
        self._starts: GroupCommitter[StartRequest, StartResult] = GroupCommitter(self._start_many)
        self._finishes: GroupCommitter[FinishRequest, Execution | None] = GroupCommitter(
            finisher.finish
        )

    async def _start_many(self, requests: list[StartRequest]) -> list[StartResult]:
        return await start_batch(
            self.database,
            requests,
            instance=self.settings.instance,
            lease_seconds=self.settings.lease_seconds,
            clock=self.clock,
            job_cache=self._job_cache,
        )

    # ------------------------------------------------------------------ starting
    def submit(self, execution_id: str, job_id: str, *, force: bool = False) -> None:
        """Try to start a QUEUED execution as soon as a slot is free (fire and forget)."""
        if self._stopping or execution_id in self._pending or execution_id in self._runs:
            return
        self._pending.add(execution_id)
        self._decided.setdefault(execution_id, asyncio.Event())
        self.spawn(self._start_and_run(StartRequest(execution_id, job_id, force)))

    async def wait_started(self, execution_id: str) -> None:
        """Until the submitted execution's start was decided."""
        decided = self._decided.get(execution_id)
        if decided is not None:
            await decided.wait()

    def submit_at(self, execution_id: str, job_id: str, at: datetime) -> None:
        delay = max((at - self.clock.now()).total_seconds(), 0.0)
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self.submit, execution_id, job_id)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _start_and_run(self, request: StartRequest) -> None:
        execution_id = request.execution_id
        try:
            async with self._slots:
                if self._stopping:
                    return
                started = await self._starts.submit(request)
                if started.execution is None or started.job is None:
                    if started.waiting:
                        self._waited_on.add(request.job_id)
                    self._mark_decided(execution_id)
                    if started.cancel_ids:
                        await self.cancel_local(started.cancel_ids, REPLACED)
                        # Those runs have ended (if they were ours): decide again now.
                        self._pending.discard(execution_id)
                        self.submit(execution_id, request.job_id)
                    return
                self._pending.discard(execution_id)
                self._mark_decided(execution_id)
                await self._run(started.execution, started.job)
        finally:
            self._pending.discard(execution_id)
            self._mark_decided(execution_id)

    def _mark_decided(self, execution_id: str) -> None:
        decided = self._decided.pop(execution_id, None)
        if decided is not None:
            decided.set()

    # ------------------------------------------------------------------ running
    async def _run(self, execution: Execution, job: Job) -> None:
        task = asyncio.current_task()
        assert task is not None
        run = _Run(execution=execution, task=task)
        self._runs[execution.id] = run
        collector = OutputCollector(
            limit_bytes=self.settings.output_limit_bytes, now=self.clock.now
        )
        try:
            try:
                outcome = await self._outcome_of(execution, job, collector, run)
            except asyncio.CancelledError:
                # This instance is stopping: record the run now rather than leave it to the
                # lease; an at-least-once job's next attempt waits QUEUED for any instance.
                stopped = Outcome(
                    ExecutionStatus.FAILED,
                    output=collector.text(),
                    error=f"interrupted: instance {self.settings.instance} stopped while it ran",
                )
                request = FinishRequest(execution, job, stopped, collector.chunks, True)
                await asyncio.shield(self._finisher_direct.finish([request]))
                raise
            # Shielded: once the outcome is known it is recorded, even if a stop cancels us.
            await asyncio.shield(self._finish(execution, job, outcome, collector))
        finally:
            self._runs.pop(execution.id, None)
            run.done.set()
        # BUFFER_ONE and CANCEL_RUNNING runs wait for this one: let them go now. (Runs
        # waiting on another instance are started by its own ends, or the sweeper.)
        if job.id in self._waited_on:
            self._waited_on.discard(job.id)
            await self.kick_job(job.id)

    async def _outcome_of(
        self, execution: Execution, job: Job, collector: OutputCollector, run: _Run
    ) -> Outcome:
        context = RunContext(
            execution_id=execution.id,
            job_id=job.id,
            job_name=job.spec.name,
            scheduled_for=execution.scheduled_for,
            attempt=execution.attempt,
            idempotency_key=execution.idempotency_key,
        )
        timeout = job.spec.timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                result = await self.runners.run(job.spec.action, context, collector)
        except TimeoutError:
            return Outcome(
                ExecutionStatus.TIMED_OUT,
                output=collector.text(),
                error=f"timed out after {timeout:g} s",
            )
        except asyncio.CancelledError:
            if run.cancel_reason is None:
                raise  # the instance is stopping: _finish_stopped records it
            return Outcome(
                ExecutionStatus.CANCELLED, output=collector.text(), error=run.cancel_reason
            )
        status = ExecutionStatus.SUCCEEDED if result.succeeded else ExecutionStatus.FAILED
        return Outcome(status, result.result_code, collector.text(), result.error)

    async def _finish(
        self, execution: Execution, job: Job, outcome: Outcome, collector: OutputCollector
    ) -> None:
        retry = await self._finishes.submit(
            FinishRequest(execution, job, outcome, collector.chunks)
        )
        if retry is not None:
            self.submit_at(retry.id, retry.job_id, retry.run_after or self.clock.now())

    async def kick_job(self, job_id: str) -> None:
        async with self.database.read() as connection:
            waiting = await TransitionRepository(connection).startable(
                now=self.clock.now(), limit=10, job_id=job_id
            )
        for execution_id, waiting_job_id in waiting:
            self.submit(execution_id, waiting_job_id)

    # ------------------------------------------------------------------ cancelling
    def is_running_here(self, execution_id: str) -> bool:
        return execution_id in self._runs

    async def cancel_local(self, execution_ids: list[str] | set[str], reason: str) -> None:
        """Cancel runs of this instance and wait (bounded) until they are recorded."""
        runs = [self._runs[i] for i in execution_ids if i in self._runs]
        for run in runs:
            run.cancel_reason = reason
            run.task.cancel()
        for run in runs:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.stop_grace_seconds):
                    await run.done.wait()

    # ------------------------------------------------------------------ leases
    async def renew_leases(self) -> None:
        ids = list(self._runs)
        if not ids:
            return
        lease_until = self.clock.now() + timedelta(seconds=self.settings.lease_seconds)
        async with self.database.write() as connection:
            cancelled = await TransitionRepository(connection).renew_leases(
                ids, instance=self.settings.instance, lease_until=lease_until
            )
        if cancelled:
            await self.cancel_local(cancelled, "cancelled by request")

    # ------------------------------------------------------------------ stopping
    async def stop(self) -> None:
        """Let runs finish for a grace period, then cancel them; each is recorded."""
        self._stopping = True
        runs = list(self._runs.values())
        if runs:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.stop_grace_seconds):
                    await asyncio.gather(*(run.done.wait() for run in runs))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._starts.drain()
        await self._finishes.drain()
