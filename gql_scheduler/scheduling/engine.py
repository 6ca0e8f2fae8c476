"""The engine: timers -> claims -> dispatcher, kept in step with the store.

The store is the source of truth (invariant 1): timers are rebuilt from it at start, re-armed
when a job changes, and a reconcile loop catches whatever a notification missed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.jobs import Job, JobState
from gql_scheduler.domain.policies import MisfirePolicy
from gql_scheduler.domain.schedules import jitter_offset
from gql_scheduler.scheduling import claims, misfires
from gql_scheduler.scheduling.dispatcher import Dispatcher
from gql_scheduler.scheduling.leases import recover_expired_leases
from gql_scheduler.scheduling.membership import Membership
from gql_scheduler.scheduling.timers import Timers
from gql_scheduler.store.database import Database
from gql_scheduler.store.executions import ExecutionRepository
from gql_scheduler.store.jobs import JobRepository
from gql_scheduler.store.transitions import TransitionRepository
from gql_scheduler.tasks import BackgroundTasks

log = logging.getLogger("gql_scheduler.engine")

CLAIM_BATCH = 500
# Jobs compared per read by the reconcile loop (a few milliseconds of the event loop each).
RECONCILE_PAGE = 2000
CLAIM_RETRY_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class EngineSettings:
    default_misfire_policy: MisfirePolicy
    lease_seconds: float = 30.0
    reconcile_seconds: float = 10.0
    sweep_seconds: float = 2.0
    # An occurrence nobody claimed this long after its time counts as missed.
    misfire_grace_seconds: float = 5.0
    # How often an instance says it is alive and learns who else is (membership.py).
    heartbeat_seconds: float = 1.0


class Engine:
    def __init__(
        self, database: Database, dispatcher: Dispatcher, clock: Clock, settings: EngineSettings
    ) -> None:
        self.database = database
        self.dispatcher = dispatcher
        self.clock = clock
        self.settings = settings
        self.timers = Timers(self._on_fire, now=clock.now)
        self._jobs: dict[str, Job] = {}
        self._fired: asyncio.Queue[tuple[str, datetime]] = asyncio.Queue()
        # Per job, occurrences its timer fired that are not yet claimed (queued behind a
        # backlog, or in a claim under way). They are late, not missed: the catch-up must
        # leave those jobs alone, or past capacity it records as MISSED what the claim
        # queue was about to run.
        self._unclaimed: collections.Counter[str] = collections.Counter()
        # And the latest of those: a job re-armed meanwhile starts after it, not from its
        # stored watermark (which those claims have yet to move), or its timer would fire
        # them all again at once.
        self._latest_unclaimed: dict[str, datetime] = {}
        self._loops = BackgroundTasks()
        self.outage = database.outage
        self.membership = Membership(
            database, dispatcher.settings.instance, clock,
            heartbeat_seconds=settings.heartbeat_seconds,
        )  # fmt: skip
        # Others' occurrences, fired here too, claimed here only if still unrecorded once
        # membership.takeover_after has passed (they stay counted in _unclaimed till then).
        self._standby: list[tuple[Job, datetime]] = []
        # Occurrences this instance tried to claim (what sharing out the claims saves).
        self.claims_attempted = 0

    @property
    def running(self) -> bool:
        return self.timers.running

    async def start(self) -> None:
        await self.membership.beat()  # known to the others before its timers fire
        await self._recover_leases()
        async with self.database.read() as connection:
            active = await JobRepository(connection).list_active()
        now = self.clock.now()
        missed = {job.id for job in active if self._has_missed(job, now)}
        for job in active:
            if job.id in missed:
                await self._arm(job)  # records its misfires first
        clean = [job for job in active if job.id not in missed]
        self._jobs.update((job.id, job) for job in clean)
        self.timers.arm_all(clean)
        self.timers.start()
        await self._sweep()
        self._loops.start(self._claim_loop(), name="claims")
        self._every(self.settings.reconcile_seconds, self.reconcile)
        self._every(self.settings.sweep_seconds, self._sweep)
        self._every(self.settings.lease_seconds / 3, self.dispatcher.renew_leases)
        self._every(self.settings.lease_seconds / 2, self._recover_leases)
        if self.membership.enabled:
            self._every(self.settings.heartbeat_seconds, self._heartbeat)
        armed = len(self.timers.armed_ids())
        log.info(
            "engine started: %d active jobs, %d timers armed",
            len(active),
            armed,
            extra={"action": "engine_started", "jobs": len(active), "armed": armed},
        )

    async def stop(self) -> None:
        self.timers.stop()
        await self._loops.stop()
        try:
            await self.membership.leave()  # the others take its share over at once
        except Exception as error:
            self.outage.failed("leaving", error)  # they will after its heartbeat lapses
        await self.dispatcher.stop()
        log.info("engine stopped", extra={"action": "engine_stopped"})

    def job_changed(self, job_id: str) -> None:
        """Called after a job's change commits: re-read it and re-arm its timer."""
        self.dispatcher.spawn(self._resync(job_id))

    # ------------------------------------------------------------------ timers
    async def _resync(self, job_id: str) -> None:
        async with self.database.read() as connection:
            job = await JobRepository(connection).get(job_id)
        if job is None or job.state is not JobState.ACTIVE:
            self._jobs.pop(job_id, None)
            self.timers.disarm(job_id)
            return
        await self._arm(job)

    async def _arm(self, job: Job) -> None:
        """Catch up on what was missed since the watermark, then arm the timer."""
        now = self.clock.now()
        grace = timedelta(seconds=self.settings.misfire_grace_seconds)
        if self._has_missed(job, now):
            policy = job.spec.misfire_policy or self.settings.default_misfire_policy
            for execution in await misfires.catch_up(
                self.database, job, now=now, grace=grace, policy=policy
            ):
                self.dispatcher.submit(execution.id, execution.job_id)
            # The catch-up moved the watermark, and may have completed the job.
            async with self.database.read() as connection:
                refreshed = await JobRepository(connection).get(job.id)
            if refreshed is None or refreshed.state is not JobState.ACTIVE:
                self._jobs.pop(job.id, None)
                self.timers.disarm(job.id)
                return
            job = refreshed
        self._jobs[job.id] = job
        latest = self._latest_unclaimed.get(job.id)
        if latest is not None and (job.watermark is None or job.watermark < latest):
            job = dataclasses.replace(job, watermark=latest)  # for the timer only
        self.timers.arm(job)

    def _has_missed(self, job: Job, now: datetime) -> bool:
        """Whether occurrences went unfired since the watermark (cheap test first); not
        while some it fired are still to be claimed (they move the watermark)."""
        if self._unclaimed[job.id]:
            return False
        grace = timedelta(seconds=self.settings.misfire_grace_seconds)
        stale = job.next_run_at is None or job.next_run_at < now - grace
        return stale and bool(misfires.missed_occurrences(job, now=now, grace=grace))

    def _on_fire(self, job_id: str, scheduled_for: datetime) -> None:
        self._unclaimed[job_id] += 1
        latest = self._latest_unclaimed.get(job_id)
        if latest is None or scheduled_for > latest:
            self._latest_unclaimed[job_id] = scheduled_for
        self._fired.put_nowait((job_id, scheduled_for))

    def _claimed(self, job_ids: Iterable[str]) -> None:
        """Their claims ended, won, lost or given up (the occurrences then stay owed in the
        store, for the catch-up to settle)."""
        for job_id in job_ids:
            self._unclaimed[job_id] -= 1
            if self._unclaimed[job_id] <= 0:
                del self._unclaimed[job_id]
                self._latest_unclaimed.pop(job_id, None)

    # ------------------------------------------------------------------ claims
    async def _claim_loop(self) -> None:
        while True:
            batch = [await self._fired.get()]
            while len(batch) < CLAIM_BATCH and not self._fired.empty():
                batch.append(self._fired.get_nowait())
            due = self._standing_by(self._due_now(batch))
            if not due:
                continue
            try:
                await self._claim(due)
            except Exception as error:
                # A database hiccup: try once more shortly, so the runs stay on time if
                # it passes. After that they stay owed: the watermark has not moved
                # over them, and the reconcile loop settles them by misfire policy.
                self.outage.failed("claiming", error)
                self.dispatcher.spawn(self._claim_again(due))
            else:
                self._claimed(job.id for job, _ in due)

    async def _claim_again(self, due: list[tuple[Job, datetime]]) -> None:
        try:
            await asyncio.sleep(CLAIM_RETRY_SECONDS)
            await self._claim(due)
        except Exception as error:
            self.outage.failed("claiming", error)
        finally:
            self._claimed(job.id for job, _ in due)

    def _due_now(self, batch: list[tuple[str, datetime]]) -> list[tuple[Job, datetime]]:
        """Occurrences to claim now; jittered ones are claimed after their delay."""
        due = []
        for job_id, scheduled_for in batch:
            job = self._jobs.get(job_id)
            if job is None:
                self._claimed([job_id])
                continue
            delay = jitter_offset(job.id, scheduled_for, job.spec.jitter_seconds)
            if delay:
                self.dispatcher.spawn(self._claim_later(job, scheduled_for, delay))
            else:
                due.append((job, scheduled_for))
        return due

    async def _claim_later(self, job: Job, scheduled_for: datetime, delay: timedelta) -> None:
        await asyncio.sleep(delay.total_seconds())
        due = self._standing_by([(job, scheduled_for)])
        try:
            if due:
                await self._claim(due)
        finally:
            self._claimed(job.id for job, _ in due)

    # ------------------------------------------------------------------ sharing out
    def _standing_by(self, due: list[tuple[Job, datetime]]) -> list[tuple[Job, datetime]]:
        """This instance's share of `due`; the rest waits on standby (membership.py)."""
        if len(self.membership.shares.instances) == 1:
            return due
        mine = []
        for job, at in due:
            if self.membership.mine(job.id):
                mine.append((job, at))
            else:
                self._standby.append((job, at))
        return mine

    async def _heartbeat(self) -> None:
        try:
            await self.membership.beat()
        except Exception:
            # The store is out of reach: the standby occurrences are left to the catch-up,
            # which settles them by misfire policy once it is back (as the claims' own).
            self._claimed(job.id for job, _ in self._standby)
            self._standby = []
            raise
        await self._take_over()

    async def _take_over(self) -> None:
        """Claim the standby occurrences still unrecorded after the takeover delay, or at
        once when their job is now this instance's (its owner dropped out): fired on time
        here, they are late, not missed, as behind a backlog."""
        cutoff = self.clock.now() - self.membership.takeover_after
        mine = self.membership.mine
        ready = [(job, at) for job, at in self._standby if at <= cutoff or mine(job.id)]
        if not ready:
            return
        taken = {(job.id, at) for job, at in ready}
        self._standby = [(job, at) for job, at in self._standby if (job.id, at) not in taken]
        try:
            async with self.database.read() as connection:
                recorded = await ExecutionRepository(connection).recorded_among(
                    [(job.id, at) for job, at in ready]
                )
            orphans = [(job, at) for job, at in ready if (job.id, at) not in recorded]
            for start in range(0, len(orphans), CLAIM_BATCH):
                await self._claim(orphans[start : start + CLAIM_BATCH])
        finally:
            self._claimed(job.id for job, _ in ready)

    async def _claim(self, due: list[tuple[Job, datetime]]) -> None:
        self.claims_attempted += len(due)
        claimed = await claims.claim_occurrences(
            self.database, due, now=self.clock.now(), start=self.dispatcher.inline_starter()
        )
        self.outage.succeeded()
        for request, result in claimed:
            self.dispatcher.accept(request, result)

    # ------------------------------------------------------------------ safety nets
    async def reconcile(self) -> None:
        """Re-arm jobs whose version changed, drop gone ones, and catch up lagging ones."""
        now = self.clock.now()
        before = now - timedelta(seconds=self.settings.misfire_grace_seconds)
        async with self.database.read() as connection:
            lagging = set(await JobRepository(connection).lagging(before=before))
        seen: set[str] = set()
        async for page in self._version_pages():
            for job_id, state, version in page:
                seen.add(job_id)
                cached = self._jobs.get(job_id)
                changed = cached is None or cached.version != version
                armable = state == JobState.ACTIVE.value or cached is not None
                # A job lagging only because its fired occurrences wait in the claim queue
                # needs nothing: re-reading each of thousands of them every pass, behind
                # a burst, slowed the very claims they waited for.
                behind = job_id in lagging and not self._unclaimed[job_id]
                if (armable and changed) or behind:
                    await self._resync(job_id)
        for job_id in set(self._jobs) - seen:
            await self._resync(job_id)
        self.outage.succeeded(wrote=False)  # it read every job: the database answers

    async def _version_pages(self) -> AsyncIterator[list[tuple[str, str, int]]]:
        """Every job's (id, state, version), a page per short read: with 100,000 jobs one
        read of them all held the event loop for over half a second."""
        after = ""
        while True:
            async with self.database.read() as connection:
                page = await JobRepository(connection).versions_page(
                    after=after, limit=RECONCILE_PAGE
                )
            if not page:
                return
            yield page
            after = page[-1][0]

    async def _sweep(self) -> None:
        async with self.database.read() as connection:
            startable = await TransitionRepository(connection).startable(
                now=self.clock.now(), limit=200
            )
        self.outage.succeeded(wrote=False)
        for execution_id, job_id in startable:
            self.dispatcher.submit(execution_id, job_id)

    async def _recover_leases(self) -> None:
        for retry in await recover_expired_leases(self.database, now=self.clock.now()):
            self.dispatcher.submit(retry.id, retry.job_id)

    def _every(self, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await work()
                except Exception as error:
                    # A supervisor loop: one failed pass (database restarting, say) must not
                    # end the loop; the next pass tries again.
                    self.outage.failed(getattr(work, "__name__", "a periodic task"), error)

        self._loops.start(loop(), name=getattr(work, "__name__", "loop"))
