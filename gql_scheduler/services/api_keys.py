"""API keys: created, listed and revoked (the CLI), and checked on every request.

Every instance keeps the keys in memory and reads them again every `refresh_seconds`, so
that a key created or revoked by `gql-scheduler create-api-key` / `revoke-api-key` (which
write to the database directly) takes effect everywhere within that time, without a
restart. When a refresh finds keys gone, the listeners hear their ids (open subscriptions
of those keys are closed). Uses are recorded in memory and written with the next refresh,
so a request never waits for a write.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from gql_scheduler.domain.access import (
    ApiKey,
    Principal,
    Role,
    compose_secret,
    digest_of,
    key_id_of,
)
from gql_scheduler.domain.clock import Clock
from gql_scheduler.domain.errors import InvalidInput, NotFound, Unavailable
from gql_scheduler.store.api_keys import ApiKeyRepository
from gql_scheduler.store.database import Database

log = logging.getLogger("gql_scheduler.auth")

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
RevokedListener = Callable[[set[str]], None]


class ApiKeyService:
    def __init__(self, database: Database, clock: Clock, *, refresh_seconds: float = 2.0) -> None:
        self.database = database
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._keys: dict[str, ApiKey] = {}
        self._used: dict[str, datetime] = {}
        self._revoked_listeners: list[RevokedListener] = []

    # ------------------------------------------------------------------ management
    async def create(self, name: str, role: Role) -> tuple[ApiKey, str]:
        """The new key and its secret, which exists nowhere else from now on."""
        if not NAME_PATTERN.fullmatch(name):
            raise InvalidInput(
                "a key name is 1-100 letters, digits, '.', '_', '@' or '-'", field=["name"]
            )
        key_id = secrets.token_hex(8)
        secret = compose_secret(key_id, secrets.token_urlsafe(32))
        key = ApiKey(
            id=key_id, name=name, role=role, digest=digest_of(secret), created_at=self.clock.now()
        )
        async with self.database.write() as connection:
            await ApiKeyRepository(connection).insert(key)
        log.info(
            "api key created",
            extra={"action": "api_key_created", "key_name": name, "role": role.value},
        )
        return key, secret

    async def list(self) -> list[ApiKey]:
        async with self.database.read() as connection:
            return await ApiKeyRepository(connection).all()

    async def revoke(self, name: str) -> None:
        async with self.database.write() as connection:
            if not await ApiKeyRepository(connection).delete_by_name(name):
                raise NotFound(f"no API key named {name!r}", field=["name"])
        log.info("api key revoked", extra={"action": "api_key_revoked", "key_name": name})

    # ------------------------------------------------------------------ checking
    def authenticate(self, secret: str) -> Principal | None:
        """The key's principal, or None for a secret that is not a current key's."""
        key_id = key_id_of(secret)
        key = self._keys.get(key_id) if key_id else None
        if key is None or not key.matches(secret):
            return None
        self._used[key.id] = self.clock.now()
        return key.principal

    def add_revoked_listener(self, listener: RevokedListener) -> None:
        self._revoked_listeners.append(listener)

    async def refresh(self) -> None:
        """Read the keys again; tell the listeners which disappeared."""
        used, self._used = self._used, {}
        if used:  # a write only when there is something to write (SQLite has one writer)
            async with self.database.write() as connection:
                await ApiKeyRepository(connection).record_use(used)
        async with self.database.read() as connection:
            current = {key.id: key for key in await ApiKeyRepository(connection).all()}
        gone = set(self._keys) - set(current)
        self._keys = current
        if gone:
            for listener in self._revoked_listeners:
                listener(gone)

    async def run(self) -> None:
        """Refresh forever; a failed read keeps the keys known so far (and says so once)."""
        failing = False
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except (OSError, SQLAlchemyError, Unavailable) as error:
                if not failing:
                    log.warning(
                        "could not read the API keys; keeping the ones known: %s",
                        type(error).__name__,
                        extra={"action": "api_keys_unreadable"},
                    )
                failing = True
                continue
            if failing:
                log.info("API keys readable again", extra={"action": "api_keys_readable"})
            failing = False

    @property
    def known(self) -> Sequence[ApiKey]:
        return list(self._keys.values())
