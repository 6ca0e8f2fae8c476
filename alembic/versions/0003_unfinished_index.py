"""executions: a partial index of the unfinished runs instead of (job_id, status)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

The engine asks, for every batch it starts, which runs of the batch's jobs are still QUEUED
or RUNNING. A full (job_id, status) index answered that, but every status change of every
run moved an entry in it, at the job's place in an index as large as the whole history:
under load its pages were most of what each commit wrote. The partial index holds only the
unfinished runs, so it stays small; listing a job's runs by status uses (job_id, id).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# store.tables.UNFINISHED_WHERE, frozen for this revision.
UNFINISHED_WHERE = "status IN ('QUEUED', 'RUNNING')"


def upgrade() -> None:
    op.drop_index("ix_executions_job_id_status", table_name="executions")
    op.create_index(
        "ix_executions_unfinished",
        "executions",
        ["job_id"],
        sqlite_where=sa.text(UNFINISHED_WHERE),
        postgresql_where=sa.text(UNFINISHED_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_executions_unfinished", table_name="executions")
    op.create_index("ix_executions_job_id_status", "executions", ["job_id", "status"])
