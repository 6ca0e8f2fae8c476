"""events_pruned: how far the event outbox has been pruned

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

A subscription that resumes from an event id at or below `through_id` would miss events;
the API refuses it with a clear error instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events_pruned",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("through_id", BIG_ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events_pruned"),
    )


def downgrade() -> None:
    op.drop_table("events_pruned")
