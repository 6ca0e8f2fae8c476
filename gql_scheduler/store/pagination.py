"""Opaque keyset cursors: stable pages however many rows come and go between requests."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gql_scheduler.domain.errors import InvalidInput


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode()


def decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """Decode a cursor made by `encode_cursor`, checking each value's type."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        return [_decode_value(value, kind) for value, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("is not a cursor from this list", field=["after"]) from None


def _decode_value(value: Any, kind: type) -> Any:
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed
    if not isinstance(value, kind):
        raise TypeError(kind)
    return value


def after_keyset(
    keys: Sequence[tuple[sa.ColumnElement[Any], bool]], values: Sequence[Any]
) -> sa.ColumnElement[bool]:
    """Rows strictly after `values` in the order of `keys` ((expression, descending) pairs).

    Spelled out as (a > x) OR (a = x AND b > y) ... because row-value comparison cannot mix
    ascending and descending keys.
    """
    clauses = []
    for index, (expression, descending) in enumerate(keys):
        equal_before = [keys[i][0] == values[i] for i in range(index)]
        beyond = expression < values[index] if descending else expression > values[index]
        clauses.append(sa.and_(*equal_before, beyond))
    return sa.or_(*clauses)
