"""Execution output, in the chunks it was produced in (live output reads these)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain.output import OutputChunk, OutputStream
from gql_scheduler.store.tables import execution_output


class OutputRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def read(self, execution_id: str, *, from_seq: int, limit: int) -> list[OutputChunk]:
        statement = (
            sa.select(execution_output)
            .where(
                execution_output.c.execution_id == int(execution_id),
                execution_output.c.seq >= from_seq,
            )
            .order_by(execution_output.c.seq)
            .limit(limit)
        )
        rows = (await self.connection.execute(statement)).mappings().all()
        return [
            OutputChunk(
                seq=row["seq"], stream=OutputStream(row["stream"]), text=row["text"], at=row["at"]
            )
            for row in rows
        ]

    async def insert(self, execution_id: str, chunks: Sequence[OutputChunk]) -> None:
        if chunks:
            await self.connection.execute(
                execution_output.insert(), [chunk_row(execution_id, chunk) for chunk in chunks]
            )


def chunk_row(execution_id: str, chunk: OutputChunk) -> dict[str, Any]:
    return {
        "execution_id": int(execution_id),
        "seq": chunk.seq,
        "stream": chunk.stream.value,
        "text": chunk.text,
        "at": chunk.at,
    }
