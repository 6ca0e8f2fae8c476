"""The schema. Alembic's migrations must build exactly this (a test compares them)."""

from __future__ import annotations

import sqlalchemy as sa

from gql_scheduler.domain.executions import OCCURRENCE_TRIGGERS
from gql_scheduler.store.types import BigId, UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("pause_note", sa.Text),
    sa.Column("schedules", sa.JSON, nullable=False),
    sa.Column("action", sa.JSON, nullable=False),
    sa.Column("start_at", UTCDateTime),
    sa.Column("end_at", UTCDateTime),
    sa.Column("jitter_seconds", sa.Float, nullable=False),
    sa.Column("overlap_policy", sa.String(16), nullable=False),
    sa.Column("misfire_policy", sa.String(16)),
    sa.Column("catch_up_window_seconds", sa.Float),
    sa.Column("delivery", sa.String(16), nullable=False),
    sa.Column("retry", sa.JSON, nullable=False),
    sa.Column("timeout_seconds", sa.Float),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("next_run_at", UTCDateTime, index=True),
    sa.Column("last_run_at", UTCDateTime),
    # Invariant 5: the last occurrence fired; recovery plans misfires from here.
    sa.Column("watermark", UTCDateTime),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_jobs_state_next_run_at", "state", "next_run_at"),
    sa.Index("ix_jobs_created_at_id", "created_at", "id"),
)

# Tags get their own table so that filtering by tag is an indexed join on every backend.
job_tags = sa.Table(
    "job_tags",
    metadata,
    sa.Column(
        "job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(100), primary_key=True),
    sa.Index("ix_job_tags_tag", "tag"),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # No foreign key: an execution's history outlives its job (Execution.job is null then).
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("scheduled_for", UTCDateTime, nullable=False),
    sa.Column("queued_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("result_code", sa.Integer),
    sa.Column("output", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("instance", sa.String(200)),
    sa.Column(
        "retry_of_id", BigId, sa.ForeignKey("executions.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("lease_until", UTCDateTime),
    # The same for every attempt at one occurrence (sent as the HTTP Idempotency-Key).
    sa.Column("idempotency_key", sa.String(200), nullable=False, server_default=""),
    # A QUEUED execution does not start before this (retry backoff).
    sa.Column("run_after", UTCDateTime),
    # Set by cancelExecution; the owning instance sees it when it renews the lease.
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    # Who asked for a manual run, retry or backfill (an API key's name); null: the engine.
    sa.Column("triggered_by", sa.String(200)),
    sa.Index("ix_executions_job_id_id", "job_id", "id"),
    sa.Index("ix_executions_status_lease_until", "status", "lease_until"),
    sa.Index("ix_executions_status_run_after", "status", "run_after"),
)

# Output of an execution in the chunks it was produced in (live output replays these).
execution_output = sa.Table(
    "execution_output",
    metadata,
    sa.Column(
        "execution_id",
        BigId,
        sa.ForeignKey("executions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("stream", sa.String(8), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# Invariant 2: one execution per schedule occurrence, claimed by INSERT ... ON CONFLICT.
# Partial, so that manual runs and retries of the same instant are never refused.
# Literal SQL rather than a bound IN list: the predicate must render identically in the
# index, in ON CONFLICT targets, and in statements executed for many rows at once.
OCCURRENCE_WHERE = sa.text(
    '"trigger" IN ({})'.format(", ".join(f"'{t.value}'" for t in OCCURRENCE_TRIGGERS))
)
sa.Index(
    "uq_executions_occurrence",
    executions.c.job_id,
    executions.c.scheduled_for,
    unique=True,
    sqlite_where=OCCURRENCE_WHERE,
    postgresql_where=OCCURRENCE_WHERE,
)

# The runs still QUEUED or RUNNING: what overlap decisions look at, for every start batch.
# Partial, so that it stays as small as the work in flight: a full (job_id, status) index
# moved an entry at the job's place in the whole history on every status change. Queries
# must repeat the predicate literally for the planner to use it.
UNFINISHED_WHERE = sa.text("status IN ('QUEUED', 'RUNNING')")
sa.Index(
    "ix_executions_unfinished",
    executions.c.job_id,
    sqlite_where=UNFINISHED_WHERE,
    postgresql_where=UNFINISHED_WHERE,
)

# The outbox (invariant 4): every state change writes its event in the same transaction.
# The id is the monotonic cursor that subscribers resume from.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("type", sa.String(24), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("job_id", sa.String(36)),
    sa.Column("execution_id", BigId),
    sa.Column("actor", sa.String(200)),
    sa.Column("payload", sa.JSON),
    sa.Index("ix_events_job_id_id", "job_id", "id"),
    sa.Index("ix_events_at", "at"),
)

# One row: every event with an id up to `through_id` has been pruned. A subscriber that
# resumes from before it would miss events, and is told so instead.
events_pruned = sa.Table(
    "events_pruned",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("through_id", BigId, nullable=False),
)

# API keys: only the digest of each secret is kept (domain/access.py says why that is enough).
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime),
)

# The live instances (scheduling/membership.py): each keeps its row's heartbeat fresh.
instances = sa.Table(
    "instances",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
)
