"""api keys, and who triggered a manual run

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Requests authenticate with API keys (only a digest of each secret is stored), and manual
runs, retries and backfills record the key that asked for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# What the model's UTCDateTime stores: timestamptz on PostgreSQL, naive-UTC text on SQLite.
UTC_TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("last_used_at", UTC_TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
    )
    # A plain ADD COLUMN on both backends: a batch rebuild would copy the whole history.
    op.add_column("executions", sa.Column("triggered_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("triggered_by")
    op.drop_table("api_keys")
