"""The API key commands' work: the store brought up to date, then the key use case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gql_scheduler.domain.access import ApiKey, Role
from gql_scheduler.domain.clock import SystemClock
from gql_scheduler.services.api_keys import ApiKeyService
from gql_scheduler.settings import Settings
from gql_scheduler.store import migrations
from gql_scheduler.store.database import Database


@asynccontextmanager
async def _keys(settings: Settings) -> AsyncIterator[ApiKeyService]:
    database = Database(settings.database_url)
    try:
        # Keys are often made before the first start: the schema may not exist yet.
        await migrations.upgrade_async(database.engine)
        yield ApiKeyService(database, SystemClock())
    finally:
        await database.dispose()


async def create_api_key(settings: Settings, name: str, role: Role) -> tuple[ApiKey, str]:
    async with _keys(settings) as keys:
        return await keys.create(name, role)


async def list_api_keys(settings: Settings) -> str:
    async with _keys(settings) as keys:
        found = await keys.list()
    if not found:
        return "no API keys"
    rows = [("NAME", "ROLE", "CREATED", "LAST USED")]
    rows += [
        (
            key.name,
            key.role.value,
            key.created_at.isoformat(timespec="seconds"),
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never",
        )
        for key in found
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def revoke_api_key(settings: Settings, name: str) -> None:
    async with _keys(settings) as keys:
        await keys.revoke(name)
