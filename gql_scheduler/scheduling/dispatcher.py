"""Runs executions: the global limit, overlap policies, timeouts, retries, cancellation and
leases (invariant 3). Any instance may start any QUEUED execution: the conditional
QUEUED -> RUNNING update is the claim, so a race has one winner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.actions.base import ActionRunner
from gql_scheduler.actions.output_collector import OutputCollector
from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.executions import Execution, ExecutionStatus, Outcome
from gql_scheduler.scheduling.finishes import Finisher, FinishRequest
from gql_scheduler.scheduling.group_commit import GroupCommitter
from gql_scheduler.scheduling.leases import FENCED_ERROR, LeaseFence
from gql_scheduler.scheduling.output_writer import LiveOutputWriter
from gql_scheduler.scheduling.runs import Run, run_action
from gql_scheduler.scheduling.starts import (
    JobCache,
    StartRequest,
    StartResult,
    decide_starts,
    start_batch,
)
from gql_scheduler.store.database import Database
from gql_scheduler.store.outages import is_unreachable
from gql_scheduler.store.transitions import TransitionRepository
from gql_scheduler.tasks import BackgroundTasks

log = logging.getLogger("gql_scheduler.dispatcher")

SHUTDOWN_ERROR = "shutdown: instance {instance} stopped before the run ended"

REPLACED = "cancelled: a newer run of the job replaced it"
MAX_START_BATCH = 500
# A run's end that could not be recorded is tried again after these, doubling in between.
FINISH_RETRY_FIRST_SECONDS = 0.2
FINISH_RETRY_MAX_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    instance: str
    lease_seconds: float
    max_concurrent: int
    output_limit_bytes: int
    # How long a stopping instance lets running executions finish before cancelling them.
    stop_grace_seconds: float = 10.0


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
        self._runs: dict[str, Run] = {}
        # Runs here whose work is over and whose end waits for its group commit: a start
        # decision must not take them for still going (OverlapBoard).
        self._ended: set[str] = set()
        # Slots promised to start batches in flight, so that two of them cannot both fill
        # the same free slots.
        self._reserved = 0
        # Waiting for a start decision, in arrival order; one task decides them in batches.
        self._queued: dict[str, StartRequest] = {}
        self._starter: asyncio.Task[None] | None = None
        # Set once a submitted execution's start was decided (started, skipped, waiting).
        self._decided: dict[str, asyncio.Event] = {}
        # Jobs with a run waiting here for another to end (BUFFER_ONE, CANCEL_RUNNING,
        # backfills): only their ends need to look for the next run to start.
        self._waited_on: set[str] = set()
        self._tasks = BackgroundTasks()
        self._stopping = False
        self._job_cache = JobCache()
        self._finisher = Finisher(database, clock, settings.instance, random_unit)
        self._fence = LeaseFence(
            now=clock.now(),
            lease_seconds=settings.lease_seconds,
            renew_every=settings.lease_seconds / 3,  # the engine's renewal loop
        )
        # Group commit: ends arriving while one transaction runs share the next.
        self._finishes: GroupCommitter[FinishRequest, Execution | None] = GroupCommitter(
            self._finisher.finish
        )

    # ------------------------------------------------------------------ starting
    def submit(self, execution_id: str, job_id: str, *, force: bool = False) -> None:
        """Start a QUEUED execution as soon as a slot is free (fire and forget)."""
        if self._stopping or execution_id in self._queued or execution_id in self._runs:
            return
        self._queued[execution_id] = StartRequest(execution_id, job_id, force)
        self._decided.setdefault(execution_id, asyncio.Event())
        self._wake_starter()

    def submit_at(self, execution_id: str, job_id: str, at: datetime) -> None:
        delay = max((at - self.clock.now()).total_seconds(), 0.0)
        asyncio.get_running_loop().call_later(delay, self.submit, execution_id, job_id)

    async def wait_started(self, execution_id: str) -> None:
        """Until the submitted execution's start was decided."""
        decided = self._decided.get(execution_id)
        if decided is not None:
            await decided.wait()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coroutine` until it ends or the dispatcher stops (which waits for it)."""
        return self._tasks.start(coroutine)

    def _wake_starter(self) -> None:
        if self._queued and (self._starter is None or self._starter.done()):
            self._starter = self._tasks.start(self._start_queued(), name="starts")

    async def _start_queued(self) -> None:
        """Decide queued starts in batches of at most the free slots; ends wake it again."""
        while self._queued and not self._stopping:
            free = self._free_slots()
            if free <= 0:
                return
            keys = list(self._queued)[: min(free, MAX_START_BATCH)]
            batch = [self._queued.pop(key) for key in keys]
            self._reserved += len(batch)
            try:
                results = await self._start_many(batch)
            except Exception as error:
                # The executions stay QUEUED in the store; the sweeper submits them again.
                self.database.outage.failed("starting runs", error)
                results = [StartResult() for _ in batch]
            finally:
                self._reserved -= len(batch)
            for request, result in zip(batch, results, strict=True):
                self._started(request, result)

    def _free_slots(self) -> int:
        return self.settings.max_concurrent - len(self._runs) - self._reserved

    def inline_starter(
        self,
    ) -> (
        Callable[[AsyncConnection, list[StartRequest]], Awaitable[list[StartResult | None]]] | None
    ):
        """Lets a claim decide its winners' starts in its own transaction (one transaction
        less per run); None while earlier runs wait for a slot, to keep their turn."""
        if self._queued or self._stopping or self._free_slots() <= 0:
            return None
        return self._start_within

    async def _start_within(
        self, connection: AsyncConnection, requests: list[StartRequest]
    ) -> list[StartResult | None]:
        """Start decisions inside the caller's transaction, within the free slots; None for
        those beyond them (the caller submits those)."""
        take = requests[: max(self._free_slots(), 0)]
        self._reserved += len(take)
        try:
            results = await decide_starts(
                connection,
                take,
                instance=self.settings.instance,
                lease_seconds=self.settings.lease_seconds,
                clock=self.clock,
                job_cache=self._job_cache,
                ended=self._ended,
            )
        finally:
            self._reserved -= len(take)
        return [*results, *([None] * (len(requests) - len(take)))]

    def accept(self, request: StartRequest, result: StartResult | None) -> None:
        """After the claim's commit: run what started; submit what was not decided."""
        if result is None:
            self.submit(request.execution_id, request.job_id, force=request.force)
        else:
            self._started(request, result)

    async def _start_many(self, requests: list[StartRequest]) -> list[StartResult]:
        return await start_batch(
            self.database,
            requests,
            instance=self.settings.instance,
            lease_seconds=self.settings.lease_seconds,
            clock=self.clock,
            job_cache=self._job_cache,
            ended=self._ended,
        )

    def _started(self, request: StartRequest, result: StartResult) -> None:
        if result.execution is not None and result.job is not None:
            run = Run(result.execution, result.job)
            self._runs[run.execution.id] = run  # counted against the limit from now on
            run.task = self.spawn(self._run(run))
        elif result.waiting:
            self._waited_on.add(request.job_id)
            if result.cancel_ids:
                self.spawn(self._replace(request, result.cancel_ids))
        self._mark_decided(request.execution_id)

    async def _replace(self, request: StartRequest, cancel_ids: list[str]) -> None:
        """CANCEL_RUNNING: stop the job's runs here, then decide the new one again."""
        await self.cancel_local(cancel_ids, REPLACED)
        self.submit(request.execution_id, request.job_id)

    def _mark_decided(self, execution_id: str) -> None:
        decided = self._decided.pop(execution_id, None)
        if decided is not None:
            decided.set()

    # ------------------------------------------------------------------ running
    async def _run(self, run: Run) -> None:
        execution, job = run.execution, run.job
        output_writer = LiveOutputWriter(self.database, execution.id)
        collector = OutputCollector(
            limit_bytes=self.settings.output_limit_bytes,
            now=self.clock.now,
            listener=output_writer.on_chunk,
        )
        try:
            try:
                outcome = await run_action(run, self.runners, collector)
            except asyncio.CancelledError:
                await asyncio.shield(self._record_interrupted(run, collector, output_writer))
                raise
            self._ended.add(execution.id)
            # Once handed to the group committer the outcome is recorded even if a stop
            # cancels this task while it waits.
            unwritten = await output_writer.close()
            await self._finish(FinishRequest(execution, job, outcome, tuple(unwritten)))
        finally:
            self._runs.pop(execution.id, None)
            self._ended.discard(execution.id)
            run.done.set()
            self._wake_starter()  # a slot is free
        # BUFFER_ONE and CANCEL_RUNNING runs wait for this one: let them go now. (Runs
        # waiting on another instance are started by its own ends, or the sweeper.)
        if job.id in self._waited_on:
            self._waited_on.discard(job.id)
            await self.kick_job(job.id)

    async def _record_interrupted(
        self, run: Run, collector: OutputCollector, output_writer: LiveOutputWriter
    ) -> None:
        """This instance is stopping: record the run now rather than leave it to the lease;
        an at-least-once job's next attempt waits QUEUED for any instance."""
        # CANCELLED, not FAILED: the job did not fail, and its statistics must not say so.
        stopped = Outcome(
            ExecutionStatus.CANCELLED,
            output=collector.text(),
            error=run.interrupted_by or SHUTDOWN_ERROR.format(instance=self.settings.instance),
        )
        unwritten = tuple(await output_writer.close())
        request = FinishRequest(run.execution, run.job, stopped, unwritten, True)
        await self._finisher.finish([request])

    async def _finish(self, request: FinishRequest) -> None:
        """Record a run's end; while the database cannot take it (down, a full disk), keep
        it and try again, so that the end of work that ran is not lost to an outage."""
        wait = FINISH_RETRY_FIRST_SECONDS
        while True:
            try:
                retry = await self._finishes.submit(request)
                break
            except Exception as error:
                if not is_unreachable(error):
                    raise
                self.database.outage.failed("recording a run's end", error)
            await asyncio.sleep(wait)
            wait = min(wait * 2, FINISH_RETRY_MAX_SECONDS)
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
    async def cancel_local(self, execution_ids: list[str] | set[str], reason: str) -> None:
        """Cancel runs of this instance and wait (bounded) until they are recorded."""
        runs = [self._runs[i] for i in execution_ids if i in self._runs]
        for run in runs:
            # Once only: a second cancel would interrupt the recording of the first (the
            # request and the broker's echo of it may both arrive).
            if run.cancel_reason is None and run.task is not None:
                run.cancel_reason = reason
                run.task.cancel()
        await self._until_recorded(runs)

    async def _until_recorded(self, runs: list[Run]) -> None:
        for run in runs:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.stop_grace_seconds):
                    await run.done.wait()

    async def _interrupt(self, execution_ids: list[str], error: str) -> None:
        """Stop runs as a stop of the instance does (an at-least-once job runs again)."""
        runs = [self._runs[i] for i in execution_ids if i in self._runs]
        for run in runs:
            if run.cancel_reason is None and run.interrupted_by is None and run.task:
                run.interrupted_by = error
                run.task.cancel()
        await self._until_recorded(runs)

    # ------------------------------------------------------------------ leases
    async def renew_leases(self) -> None:
        now = self.clock.now()
        ids = list(self._runs)
        if not ids:
            self._fence.renewed(now)  # runs that start from here get leases of their own
            return
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        try:
            async with (
                asyncio.timeout(self._fence.renewal_timeout),
                self.database.write() as connection,
            ):
                cancelled = await TransitionRepository(connection).renew_leases(
                    ids, instance=self.settings.instance, lease_until=lease_until
                )
        except (OSError, SQLAlchemyError):  # TimeoutError is an OSError
            if self._fence.must_stop(self.clock.now()):
                log.warning(
                    "leases cannot be renewed: stopping %d runs before another instance may "
                    "take them over",
                    len(ids),
                    extra={"action": "leases_fenced"},
                )
                await self._interrupt(ids, FENCED_ERROR.format(instance=self.settings.instance))
            raise
        self._fence.renewed(now)
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
        await self._tasks.stop()
        await self._finishes.drain()
