"""Sharing the claims out between live instances (scale-out on PostgreSQL).

Every instance keeps timers for every active job (ARCHITECTURE.md): any of them can claim
any occurrence, and the claim decides. Left at that, every instance did the whole claim for
every occurrence and all but one lost, so a second instance added work instead of sharing
it (two instances ran fewer executions/s than one). Now each instance claims at once only
the occurrences of its own share (domain/ownership.py) and keeps the others' on standby:
those still unrecorded a takeover delay later (their owner died, stopped, or is behind) it
claims itself, late but run.

Who is alive comes from heartbeats in the store (store/instances.py), beaten every
`heartbeat_seconds`; an instance is taken for gone `ALIVE_BEATS` beats after its last.
An instance that stops cleanly leaves at once. On SQLite, one process owns everything.
"""

from __future__ import annotations

from datetime import timedelta

from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.ownership import Shares
from gql_scheduler.store.database import Database
from gql_scheduler.store.instances import InstanceRepository

ALIVE_BEATS = 3
# Rows of instances silent this long are dropped at start-up: default instance names carry
# the process id, so every crash would otherwise leave one behind for good.
FORGOTTEN_AFTER = timedelta(days=1)


class Membership:
    def __init__(
        self, database: Database, instance: str, clock: Clock, *, heartbeat_seconds: float
    ) -> None:
        self.database = database
        self.instance = instance
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        self.shares = Shares([instance], instance)
        # Only instances that share a database server can share work out.
        self.enabled = not database.is_sqlite
        # Joining others, an instance claims nothing of its own until its second beat:
        # by then each of them has beaten once since it registered and left its share to
        # it. Claiming at once, both claimed its share meanwhile, and two runs of one job
        # going on two instances made the next occurrence SKIPPED.
        self._joining = self.enabled

    @property
    def alive_for(self) -> timedelta:
        return timedelta(seconds=self.heartbeat_seconds * ALIVE_BEATS)

    @property
    def takeover_after(self) -> timedelta:
        """How late another's occurrence must be before this instance claims it: long
        enough for a dead owner to drop out of everyone's list (one beat more)."""
        return self.alive_for + timedelta(seconds=self.heartbeat_seconds)

    def mine(self, job_id: str) -> bool:
        return not self._joining and self.shares.mine(job_id)

    async def beat(self) -> None:
        if not self.enabled:
            return
        now = self.clock.now()
        first = self._joining and self.shares.instances == (self.instance,)
        async with self.database.write() as connection:
            registry = InstanceRepository(connection)
            if first:
                await registry.forget(silent_for=FORGOTTEN_AFTER, now=now)
            alive = await registry.beat(self.instance, now=now, alive_for=self.alive_for)
        if tuple(sorted(set(alive) | {self.instance})) != self.shares.instances:
            self.shares = Shares(alive, self.instance)
        # Alone at the first beat, there is nobody to leave a share to it.
        self._joining = first and len(self.shares.instances) > 1

    async def leave(self) -> None:
        if not self.enabled:
            return
        async with self.database.write() as connection:
            await InstanceRepository(connection).leave(self.instance)
        self.shares = Shares([self.instance], self.instance)
