"""Readiness: whether this instance should get traffic, and if not, what is missing.

Liveness (`/healthz`) says the process answers; readiness (`/readyz`) says it can do its
work: the database answers within a bound, its schema is this version's, the timers are
armed and the broker is listening. A probe must answer quickly even when the database does
not, so the database's part is bounded by `timeout_seconds`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from gql_scheduler.store import migrations
from gql_scheduler.store.database import Database
from gql_scheduler.store.outages import OutageLog

DATABASE = "database"
MIGRATIONS = "migrations"


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: dict[str, bool]
    problems: list[str]

    @property
    def ready(self) -> bool:
        return all(self.checks.values())


class ReadinessService:
    def __init__(
        self,
        database: Database,
        components: Mapping[str, Callable[[], bool]],
        *,
        engine_outage: OutageLog | None = None,
        timeout_seconds: float = 2.0,
    ) -> None:
        self.database = database
        # A database can answer reads and still refuse the engine's writes (a full disk, a
        # locked or read-only SQLite file): then nothing is scheduled, so it is not ready.
        self.engine_outage = engine_outage
        self.components = components  # name -> whether it is up (the engine, the broker)
        self.timeout_seconds = timeout_seconds
        self.head = migrations.head_revision()

    async def check(self) -> Readiness:
        checks: dict[str, bool] = {}
        problems: list[str] = []
        revision = await self._revision(problems)
        checks[DATABASE] = revision is not False
        if checks[DATABASE] and self.engine_outage is not None and self.engine_outage.down:
            checks[DATABASE] = False
            problems.append(
                f"the database refuses the engine's writes ({self.engine_outage.reason})"
            )
        checks[MIGRATIONS] = revision == self.head
        if checks[DATABASE] and not checks[MIGRATIONS]:
            problems.append(
                f"the database schema is at revision {revision or 'none'}, this version "
                f"needs {self.head}"
            )
        for name, is_up in self.components.items():
            checks[name] = is_up()
            if not checks[name]:
                problems.append(f"the {name} is not running")
        return Readiness(checks, problems)

    async def _revision(self, problems: list[str]) -> str | bool | None:
        """The schema's revision; False when the database did not answer in time."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await migrations.current_revision_async(self.database.engine)
        except TimeoutError:
            problems.append(f"the database did not answer within {self.timeout_seconds:g} s")
        except (OSError, SQLAlchemyError) as error:
            problems.append(f"the database is unreachable ({type(error).__name__})")
        return False
