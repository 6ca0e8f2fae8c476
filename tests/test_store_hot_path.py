"""The datetime column converts a value bound to many rows once, and always correctly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect

from gql_scheduler.store.types import UTCDateTime


class CountingDateTime(UTCDateTime):
    cache_ok = True
    conversions = 0

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        CountingDateTime.conversions += 1
        return super().process_bind_param(value, dialect)


def test_datetime_binds_are_converted_afresh_for_each_new_value() -> None:
    dialect = sqlite.dialect()
    process = UTCDateTime().bind_processor(dialect)
    assert process is not None
    first = datetime(2030, 1, 1, tzinfo=UTC)
    second = datetime(2030, 1, 1, 4, tzinfo=timezone(timedelta(hours=2)))
    third = datetime(2030, 1, 2, tzinfo=UTC)
    values = [first, first, None, second, third, first]

    def fresh(value: datetime | None) -> object:
        convert = UTCDateTime().bind_processor(dialect)  # nothing remembered yet
        assert convert is not None
        return convert(value)

    assert [process(value) for value in values] == [fresh(value) for value in values]
    assert fresh(second) != fresh(first)


def test_one_value_bound_to_many_rows_is_converted_once() -> None:
    process = CountingDateTime().bind_processor(sqlite.dialect())
    assert process is not None
    now = datetime(2030, 1, 1, tzinfo=UTC)
    CountingDateTime.conversions = 0
    converted = {process(now) for _ in range(500)}
    assert len(converted) == 1
    assert CountingDateTime.conversions == 1
