"""The instance registry: heartbeats in, the live instances out.

On PostgreSQL the heartbeats are stamped and compared with the server's clock, so that the
instances' own clocks, which may differ between machines, do not decide who is alive.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.store.tables import instances


class InstanceRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self._postgres = connection.dialect.name == "postgresql"

    async def beat(self, name: str, *, now: datetime, alive_for: timedelta) -> list[str]:
        """Record that `name` is alive; returns the names alive now (beat within
        `alive_for`), `name` among them, in name order."""
        stamp = sa.func.now() if self._postgres else now
        dialect = postgresql if self._postgres else sqlite
        upsert = dialect.insert(instances).values(name=name, started_at=stamp, heartbeat_at=stamp)
        await self.connection.execute(
            upsert.on_conflict_do_update(
                index_elements=["name"], set_={"heartbeat_at": upsert.excluded.heartbeat_at}
            )
        )
        horizon = (sa.func.now() if self._postgres else now) - alive_for
        query = (
            sa.select(instances.c.name)
            .where(instances.c.heartbeat_at > horizon)
            .order_by(instances.c.name)
        )
        return list((await self.connection.scalars(query)).all())

    async def forget(self, *, silent_for: timedelta, now: datetime) -> None:
        """Drop the rows of instances silent this long (crashed: a clean stop leaves)."""
        horizon = (sa.func.now() if self._postgres else now) - silent_for
        await self.connection.execute(instances.delete().where(instances.c.heartbeat_at < horizon))

    async def leave(self, name: str) -> None:
        await self.connection.execute(instances.delete().where(instances.c.name == name))
