"""The API key repository: rows <-> domain keys; secrets never reach the store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.access import ApiKey, Role
from gql_scheduler.domain.errors import NameTaken
from gql_scheduler.store.tables import api_keys


class ApiKeyRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def insert(self, key: ApiKey) -> None:
        try:
            await self.connection.execute(
                api_keys.insert().values(
                    id=key.id,
                    name=key.name,
                    role=key.role.value,
                    digest=key.digest,
                    created_at=key.created_at,
                )
            )
        except sa.exc.IntegrityError as error:
            raise NameTaken(f"an API key named {key.name!r} exists", field=["name"]) from error

    async def all(self) -> list[ApiKey]:
        query = api_keys.select().order_by(api_keys.c.created_at, api_keys.c.name)
        rows = (await self.connection.execute(query)).mappings().all()
        return [_key_from_row(row) for row in rows]

    async def delete_by_name(self, name: str) -> bool:
        result = await self.connection.execute(api_keys.delete().where(api_keys.c.name == name))
        return result.rowcount > 0

    async def record_use(self, last_used: Mapping[str, datetime]) -> None:
        """Each key's latest use; a key revoked meanwhile is simply not there any more."""
        if not last_used:
            return
        statement = (
            api_keys.update()
            .where(api_keys.c.id == sa.bindparam("key_id"))
            .values(last_used_at=sa.bindparam("used_at"))
        )
        await self.connection.execute(
            statement, [{"key_id": key_id, "used_at": at} for key_id, at in last_used.items()]
        )


def _key_from_row(row: sa.RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        digest=row["digest"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
    )
