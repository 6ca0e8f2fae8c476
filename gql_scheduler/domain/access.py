"""Who may do what: roles, the principal behind a request, and API keys' secrets.

A secret is `gqls_<key id>_<32 random bytes, base64url>`. Only its SHA-256 digest is
stored: with 256 random bits there is nothing to brute-force, so a slow KDF would only
cost every request time. The key id in the secret finds the key; the digests are then
compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

SECRET_PREFIX = "gqls_"
SYSTEM_ACTOR = "system"
"""The actor of what the engine does by itself (completions, scheduled runs, retries)."""
ANONYMOUS_ACTOR = "anonymous"
"""The actor of every request when authentication is off."""


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Each role may do what the roles below it may."""
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: an API key's name and role, or anonymous (auth off)."""

    name: str
    role: Role
    key_id: str | None = None


ANONYMOUS = Principal(name=ANONYMOUS_ACTOR, role=Role.ADMIN)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    role: Role
    digest: str
    created_at: datetime
    last_used_at: datetime | None = None

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(digest_of(secret), self.digest)

    @property
    def principal(self) -> Principal:
        return Principal(name=self.name, role=self.role, key_id=self.id)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def compose_secret(key_id: str, random_part: str) -> str:
    return f"{SECRET_PREFIX}{key_id}_{random_part}"


def key_id_of(secret: str) -> str | None:
    """The key id a secret names, or None when it is not shaped like one of ours."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    key_id, separator, rest = secret[len(SECRET_PREFIX) :].partition("_")
    return key_id if separator and key_id and rest else None


def bearer_secret(authorization: object) -> str | None:
    """The secret of an `Authorization: Bearer <secret>` value (scheme case-insensitive)."""
    if not isinstance(authorization, str):
        return None
    scheme, _, secret = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()
