"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from gql_scheduler.domain.clock import check_aware


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC instant in, an aware UTC instant out, on every backend.

    PostgreSQL stores `timestamptz`. SQLite has no time zones, so the instant is stored as
    naive UTC text (which also sorts correctly) and made aware again on the way out.
    A naive datetime is refused: it is a bug at the boundary, not a value.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = check_aware(value).astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """Remembers the last value converted: a batch binds one `now` to many rows (the
        times of its events, ends and claims), each converted again otherwise. Datetimes
        are immutable, so the same object always converts to the same value."""
        convert = super().bind_processor(dialect)
        if convert is None:
            return None
        last: tuple[Any, Any] = (None, None)

        def process(value: Any) -> Any:
            nonlocal last
            if value is None:
                return None
            seen = last  # one read, then one write below: no torn pair across threads
            if seen[0] is value:
                return seen[1]
            converted = convert(value)
            last = (value, converted)
            return converted

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
