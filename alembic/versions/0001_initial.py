"""initial schema: jobs, job tags, executions and their output, events

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Builds exactly what gql_scheduler/store/tables.py describes (tests/test_migrations.py checks
it), spelled with plain SQLAlchemy types so that this file never changes with the models.
Names follow the metadata's naming convention and are written out in full.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the model's UTCDateTime stores: timestamptz on PostgreSQL, naive-UTC text on SQLite.
UTC_TIMESTAMP = sa.DateTime(timezone=True)
# What the model's BigId stores: SQLite only auto-increments an INTEGER PRIMARY KEY.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The occurrence triggers of this revision (domain.executions.OCCURRENCE_TRIGGERS), frozen:
# changing that tuple later needs a migration that rebuilds the index.
OCCURRENCE_WHERE = "\"trigger\" IN ('SCHEDULE', 'CATCH_UP', 'BACKFILL')"


def upgrade() -> None:
    create_jobs()
    create_job_tags()
    create_executions()
    create_execution_output()
    create_events()


def downgrade() -> None:
    # Indexes go with their tables; referencing tables first.
    op.drop_table("events")
    op.drop_table("execution_output")
    op.drop_table("executions")
    op.drop_table("job_tags")
    op.drop_table("jobs")


def create_jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("pause_note", sa.Text(), nullable=True),
        sa.Column("schedules", sa.JSON(), nullable=False),
        sa.Column("action", sa.JSON(), nullable=False),
        sa.Column("start_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("end_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("jitter_seconds", sa.Float(), nullable=False),
        sa.Column("overlap_policy", sa.String(16), nullable=False),
        sa.Column("misfire_policy", sa.String(16), nullable=True),
        sa.Column("catch_up_window_seconds", sa.Float(), nullable=True),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.Column("retry", sa.JSON(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("next_run_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("last_run_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("watermark", UTC_TIMESTAMP, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("name", name="uq_jobs_name"),
    )
    op.create_index("ix_jobs_next_run_at", "jobs", ["next_run_at"])
    op.create_index("ix_jobs_state_next_run_at", "jobs", ["state", "next_run_at"])
    op.create_index("ix_jobs_created_at_id", "jobs", ["created_at", "id"])


def create_job_tags() -> None:
    op.create_table(
        "job_tags",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("tag", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_tags_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "tag", name="pk_job_tags"),
    )
    op.create_index("ix_job_tags_tag", "job_tags", ["tag"])


def create_executions() -> None:
    op.create_table(
        "executions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        # No foreign key to jobs: an execution's history outlives its job.
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", UTC_TIMESTAMP, nullable=False),
        sa.Column("queued_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("started_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("finished_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("result_code", sa.Integer(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("instance", sa.String(200), nullable=True),
        sa.Column("retry_of_id", BIG_ID, nullable=True),
        sa.Column("lease_until", UTC_TIMESTAMP, nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, server_default=""),
        sa.Column("run_after", UTC_TIMESTAMP, nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(
            ["retry_of_id"],
            ["executions.id"],
            name="fk_executions_retry_of_id_executions",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_executions"),
    )
    op.create_index("ix_executions_job_id_id", "executions", ["job_id", "id"])
    op.create_index("ix_executions_status_lease_until", "executions", ["status", "lease_until"])
    op.create_index("ix_executions_job_id_status", "executions", ["job_id", "status"])
    op.create_index("ix_executions_status_run_after", "executions", ["status", "run_after"])
    # Invariant 2: one execution per schedule occurrence. Partial, so that manual runs and
    # retries of the same instant are never refused.
    op.create_index(
        "uq_executions_occurrence",
        "executions",
        ["job_id", "scheduled_for"],
        unique=True,
        sqlite_where=sa.text(OCCURRENCE_WHERE),
        postgresql_where=sa.text(OCCURRENCE_WHERE),
    )


def create_execution_output() -> None:
    op.create_table(
        "execution_output",
        sa.Column("execution_id", BIG_ID, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stream", sa.String(8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", UTC_TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name="fk_execution_output_execution_id_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "seq", name="pk_execution_output"),
    )


def create_events() -> None:
    op.create_table(
        "events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("at", UTC_TIMESTAMP, nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("execution_id", BIG_ID, nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_job_id_id", "events", ["job_id", "id"])
    op.create_index("ix_events_at", "events", ["at"])
