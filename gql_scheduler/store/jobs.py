"""The job repository: rows <-> domain jobs, filtered keyset pages, name uniqueness."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.domain import action_secrets, actions, redaction, schedules
from gql_scheduler.domain.errors import NameTaken
from gql_scheduler.domain.jobs import Job, JobFilter, JobOrder, JobSpec, JobState
from gql_scheduler.domain.pages import Page
from gql_scheduler.domain.policies import Delivery, MisfirePolicy, OverlapPolicy, RetryPolicy
from gql_scheduler.store import pagination
from gql_scheduler.store.tables import job_tags, jobs

# Sorts jobs that will never run after every job that will.
_NEVER = datetime(9999, 12, 31, tzinfo=UTC)


class JobRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def insert(self, job: Job) -> None:
        if await self._name_exists(job.spec.name):
            raise _name_taken(job.spec.name)
        try:
            await self.connection.execute(jobs.insert().values(id=job.id, **_row_values(job)))
        except sa.exc.IntegrityError as error:
            # A concurrent insert of the same name won the race after our check.
            raise _name_taken(job.spec.name) from error
        await self._insert_tags(job.id, job.spec.tags)

    async def insert_many(self, new_jobs: Sequence[Job]) -> None:
        """Bulk insert (imports, benchmarks); a duplicate name fails the whole batch."""
        if not new_jobs:
            return
        try:
            await self.connection.execute(
                jobs.insert(), [{"id": job.id, **_row_values(job)} for job in new_jobs]
            )
        except sa.exc.IntegrityError as error:
            raise NameTaken("a job name in the batch is already taken", field=["name"]) from error
        tags = [{"job_id": job.id, "tag": tag} for job in new_jobs for tag in job.spec.tags]
        if tags:
            await self.connection.execute(job_tags.insert(), tags)

    async def update(self, job: Job) -> None:
        """Store `job`, whose `version` is one more than the stored row's."""
        if await self._name_exists(job.spec.name, except_id=job.id):
            raise _name_taken(job.spec.name)
        await self.connection.execute(
            jobs.update().where(jobs.c.id == job.id).values(**_row_values(job))
        )
        await self.connection.execute(job_tags.delete().where(job_tags.c.job_id == job.id))
        await self._insert_tags(job.id, job.spec.tags)

    async def delete(self, job_id: str) -> bool:
        result = await self.connection.execute(jobs.delete().where(jobs.c.id == job_id))
        return result.rowcount > 0

    async def get(self, job_id: str, *, for_update: bool = False) -> Job | None:
        query = jobs.select().where(jobs.c.id == job_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.connection.execute(query)).mappings().first()
        return None if row is None else _job_from_row(row, await self._tags_of([job_id]))

    async def get_by_name(self, name: str) -> Job | None:
        row = (
            (await self.connection.execute(jobs.select().where(jobs.c.name == name)))
            .mappings()
            .first()
        )
        return None if row is None else _job_from_row(row, await self._tags_of([row["id"]]))

    async def get_many(self, job_ids: Sequence[str], *, for_update: bool = False) -> dict[str, Job]:
        if not job_ids:
            return {}
        query = jobs.select().where(jobs.c.id.in_(set(job_ids)))
        if for_update:
            # Always in id order, so that two instances locking overlapping sets of jobs
            # cannot deadlock.
            query = query.order_by(jobs.c.id).with_for_update()
        rows = (await self.connection.execute(query)).mappings().all()
        tags = await self._tags_of([row["id"] for row in rows])
        return {row["id"]: _job_from_row(row, tags) for row in rows}

    async def list_page(
        self, job_filter: JobFilter, order: JobOrder, first: int, after: str | None
    ) -> Page[Job]:
        keys = _order_keys(order)
        condition = _filter_condition(job_filter)
        query = jobs.select().where(condition)
        if after is not None:
            values = pagination.decode_cursor(after, [_key_kind(order), str])
            query = query.where(pagination.after_keyset(keys, values))
        query = query.order_by(
            *(key.desc() if descending else key.asc() for key, descending in keys)
        )
        rows = (await self.connection.execute(query.limit(first + 1))).mappings().all()
        total = await self.connection.scalar(
            sa.select(sa.func.count()).select_from(jobs).where(condition)
        )
        has_next_page = len(rows) > first
        rows = rows[:first]
        tags = await self._tags_of([row["id"] for row in rows])
        page = [_job_from_row(row, tags) for row in rows]
        cursors = [pagination.encode_cursor(_key_values(job, order)) for job in page]
        return Page(page, cursors, has_next_page, int(total or 0))

    async def list_active(self) -> list[Job]:
        active = jobs.c.state == JobState.ACTIVE.value
        rows = (await self.connection.execute(jobs.select().where(active))).mappings().all()
        # Tags by a join, not by the ids just read: 100,000 bound ids cost more than the rows.
        tagged = (
            sa.select(job_tags.c.job_id, job_tags.c.tag)
            .join(jobs, jobs.c.id == job_tags.c.job_id)
            .where(active)
            .order_by(job_tags.c.job_id, job_tags.c.tag)
        )
        tags: dict[str, list[str]] = {}
        for job_id, tag in (await self.connection.execute(tagged)).all():
            tags.setdefault(job_id, []).append(tag)
        return [_job_from_row(row, tags) for row in rows]

    async def states_of(
        self, job_ids: Sequence[str], *, lock: bool = False
    ) -> dict[str, tuple[JobState, datetime | None]]:
        """Each job's state and watermark, as stored now; with `lock`, their rows locked
        (on PostgreSQL) for the rest of the transaction, in id order (`lock_versions`)."""
        if not job_ids:
            return {}
        query = sa.select(jobs.c.id, jobs.c.state, jobs.c.watermark).where(
            jobs.c.id.in_(set(job_ids))
        )
        if lock and self.connection.dialect.name == "postgresql":
            query = query.order_by(jobs.c.id).with_for_update(key_share=True)
        rows = await self.connection.execute(query)
        return {row.id: (JobState(row.state), row.watermark) for row in rows}

    async def lock_versions(self, job_ids: Sequence[str]) -> dict[str, int]:
        """The jobs' versions, their rows locked on PostgreSQL.

        Every engine transaction locks the job rows it will touch first, all at once, in id
        order, and as FOR NO KEY UPDATE: it then never waits holding a lock another waits
        on (a claim updating watermarks in firing order against a start locking in id order
        deadlocked), and it does not conflict with the KEY SHARE locks that inserting an
        execution takes on its job.
        """
        if not job_ids:
            return {}
        query = (
            sa.select(jobs.c.id, jobs.c.version)
            .where(jobs.c.id.in_(set(job_ids)))
            .order_by(jobs.c.id)
        )
        if self.connection.dialect.name == "postgresql":
            query = query.with_for_update(key_share=True)
        return {row.id: row.version for row in await self.connection.execute(query)}

    async def versions_page(self, *, after: str, limit: int) -> list[tuple[str, str, int]]:
        """(id, state, version) of the next `limit` jobs in id order after `after`: what
        the reconcile loop compares with its timers, a page at a time."""
        query = (
            sa.select(jobs.c.id, jobs.c.state, jobs.c.version)
            .where(jobs.c.id > after)
            .order_by(jobs.c.id)
            .limit(limit)
        )
        return [tuple(row) for row in (await self.connection.execute(query)).all()]

    async def record_started(self, job_ids: Sequence[str], *, at: datetime) -> None:
        if job_ids:
            await self.connection.execute(
                jobs.update().where(jobs.c.id.in_(set(job_ids))).values(last_run_at=at)
            )

    async def record_fired_many(
        self, fired: Sequence[tuple[str, datetime, datetime | None]]
    ) -> None:
        """Advance watermarks (never backwards) and next runs: (job id, fired at, next run)."""
        if not fired:
            return
        await self.connection.execute(
            jobs.update()
            .where(
                jobs.c.id == sa.bindparam("job_id"),
                sa.or_(jobs.c.watermark.is_(None), jobs.c.watermark < sa.bindparam("fired_at")),
            )
            .values(watermark=sa.bindparam("fired_at"), next_run_at=sa.bindparam("next_at")),
            [
                {"job_id": job_id, "fired_at": at, "next_at": following}
                for job_id, at, following in sorted(fired, key=_by_job_id)
            ],
        )

    async def complete(self, job_id: str, *, now: datetime) -> bool:
        """ACTIVE -> COMPLETED once no run is left; False when it was not active."""
        result = await self.connection.execute(
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.state == JobState.ACTIVE.value)
            .values(
                state=JobState.COMPLETED.value,
                next_run_at=None,
                updated_at=now,
                version=jobs.c.version + 1,
            )
        )
        return result.rowcount > 0

    async def lagging(self, *, before: datetime) -> list[str]:
        """Active jobs whose next run is long past: nobody fired it (the reconcile net)."""
        query = sa.select(jobs.c.id).where(
            jobs.c.state == JobState.ACTIVE.value, jobs.c.next_run_at < before
        )
        return list((await self.connection.scalars(query)).all())

    async def count_in_state(self, state: JobState) -> int:
        count = await self.connection.scalar(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.state == state.value)
        )
        return int(count or 0)

    async def _name_exists(self, name: str, *, except_id: str | None = None) -> bool:
        query = sa.select(jobs.c.id).where(jobs.c.name == name)
        if except_id is not None:
            query = query.where(jobs.c.id != except_id)
        return (await self.connection.scalar(query)) is not None

    async def _insert_tags(self, job_id: str, tags: Iterable[str]) -> None:
        rows = [{"job_id": job_id, "tag": tag} for tag in tags]
        if rows:
            await self.connection.execute(job_tags.insert(), rows)

    async def _tags_of(self, job_ids: Sequence[str]) -> dict[str, list[str]]:
        tags: dict[str, list[str]] = {job_id: [] for job_id in job_ids}
        # In slices: SQLite caps the number of bound values in one statement.
        for start in range(0, len(job_ids), 10_000):
            query = (
                sa.select(job_tags.c.job_id, job_tags.c.tag)
                .where(job_tags.c.job_id.in_(job_ids[start : start + 10_000]))
                .order_by(job_tags.c.job_id, job_tags.c.tag)
            )
            for job_id, tag in (await self.connection.execute(query)).all():
                tags[job_id].append(tag)
        return tags


def _name_taken(name: str) -> NameTaken:
    return NameTaken(f"a job named {name!r} already exists", field=["name"])


def _stored_action(action: actions.Action) -> dict[str, Any]:
    # Every action this process stores or loads passes here: logs learn its secrets.
    redaction.known_secrets.register(action_secrets.secret_values(action))
    return actions.action_to_dict(action)


def _loaded_action(stored: dict[str, Any]) -> actions.Action:
    action = actions.action_from_dict(stored)
    redaction.known_secrets.register(action_secrets.secret_values(action))
    return action


def _row_values(job: Job) -> dict[str, Any]:
    spec = job.spec
    return {
        "name": spec.name,
        "description": spec.description,
        "state": job.state.value,
        "pause_note": job.pause_note,
        "schedules": [schedules.schedule_to_dict(schedule) for schedule in spec.schedules],
        "action": _stored_action(spec.action),
        "start_at": spec.start_at,
        "end_at": spec.end_at,
        "jitter_seconds": spec.jitter_seconds,
        "overlap_policy": spec.overlap_policy.value,
        "misfire_policy": spec.misfire_policy.value if spec.misfire_policy else None,
        "catch_up_window_seconds": spec.catch_up_window_seconds,
        "delivery": spec.delivery.value,
        "retry": spec.retry.to_dict(),
        "timeout_seconds": spec.timeout_seconds,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "next_run_at": job.next_run_at,
        "last_run_at": job.last_run_at,
        "watermark": job.watermark,
        "version": job.version,
    }


def _job_from_row(row: sa.RowMapping, tags: dict[str, list[str]]) -> Job:
    spec = JobSpec(
        name=row["name"],
        description=row["description"],
        schedules=tuple(schedules.schedule_from_dict(item) for item in row["schedules"]),
        action=_loaded_action(row["action"]),
        start_at=row["start_at"],
        end_at=row["end_at"],
        jitter_seconds=row["jitter_seconds"],
        overlap_policy=OverlapPolicy(row["overlap_policy"]),
        misfire_policy=MisfirePolicy(row["misfire_policy"]) if row["misfire_policy"] else None,
        catch_up_window_seconds=row["catch_up_window_seconds"],
        delivery=Delivery(row["delivery"]),
        retry=RetryPolicy.from_dict(row["retry"]),
        timeout_seconds=row["timeout_seconds"],
        tags=tuple(tags.get(row["id"], ())),
    )
    return Job(
        id=row["id"],
        spec=spec,
        state=JobState(row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        pause_note=row["pause_note"],
        next_run_at=row["next_run_at"],
        last_run_at=row["last_run_at"],
        watermark=row["watermark"],
        version=row["version"],
    )


def _filter_condition(job_filter: JobFilter) -> sa.ColumnElement[bool]:
    conditions: list[sa.ColumnElement[bool]] = [sa.true()]
    if job_filter.states:
        conditions.append(jobs.c.state.in_([state.value for state in job_filter.states]))
    if job_filter.tags:
        wanted = sorted(set(job_filter.tags))
        tagged_with_all = (
            sa.select(job_tags.c.job_id)
            .where(job_tags.c.tag.in_(wanted))
            .group_by(job_tags.c.job_id)
            .having(sa.func.count() == len(wanted))
        )
        conditions.append(jobs.c.id.in_(tagged_with_all))
    if job_filter.search:
        term = job_filter.search.lower()
        conditions.append(
            sa.or_(
                sa.func.lower(jobs.c.name).contains(term, autoescape=True),
                sa.func.lower(sa.func.coalesce(jobs.c.description, "")).contains(
                    term, autoescape=True
                ),
            )
        )
    return sa.and_(*conditions)


def _next_run_key() -> sa.ColumnElement[datetime]:
    return sa.func.coalesce(jobs.c.next_run_at, sa.literal(_NEVER, jobs.c.next_run_at.type))


def _order_keys(order: JobOrder) -> list[tuple[sa.ColumnElement[Any], bool]]:
    if order is JobOrder.CREATED_DESC:
        return [(jobs.c.created_at, True), (jobs.c.id, True)]
    if order is JobOrder.NEXT_RUN_ASC:
        return [(_next_run_key(), False), (jobs.c.id, False)]
    return [(jobs.c.name, False), (jobs.c.id, False)]


def _key_kind(order: JobOrder) -> type:
    return str if order is JobOrder.NAME_ASC else datetime


def _key_values(job: Job, order: JobOrder) -> list[Any]:
    if order is JobOrder.CREATED_DESC:
        return [job.created_at, job.id]
    if order is JobOrder.NEXT_RUN_ASC:
        return [job.next_run_at or _NEVER, job.id]
    return [job.spec.name, job.id]


def _by_job_id(row: tuple[str, datetime, datetime | None]) -> str:
    return row[0]
