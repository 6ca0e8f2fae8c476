"""Scalars with the contract's rules: instants carry an offset in, and leave as UTC with Z."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.types.scalar import ScalarDefinition

NAIVE_MESSAGE = "a DateTime needs an offset or Z, e.g. 2026-01-01T09:00:00Z"


def serialize_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{NAIVE_MESSAGE}; got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 instant; {NAIVE_MESSAGE}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no offset; {NAIVE_MESSAGE}")
    return parsed.astimezone(UTC)


DATETIME_SCALAR: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description=(
        "ISO-8601 instant. Input must carry an offset or Z (a naive time is refused); "
        "output is always UTC with Z."
    ),
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)
