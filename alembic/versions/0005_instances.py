"""instances: who is alive, for sharing out the claims

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Each running instance keeps a row here fresh (its heartbeat). The live ones share the
jobs out between them (scheduling/membership.py): each claims first the occurrences of its
own share, and the others' only when they are still unclaimed a moment later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# What the model's UTCDateTime stores: timestamptz on PostgreSQL, naive-UTC text on SQLite.
UTC_TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("started_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_instances"),
    )


def downgrade() -> None:
    op.drop_table("instances")
