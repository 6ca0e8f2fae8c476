"""The outbox and the feed: ordering under concurrent writers, retention, slow subscribers."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_scheduler.api import subscriptions
from gql_scheduler.api.subscriptions import TOO_SLOW_CLOSE_CODE, TOO_SLOW_REASON
from gql_scheduler.broker.postgres import PostgresBroker
from gql_scheduler.domain.errors import Expired
from gql_scheduler.domain.events import JobEventType
from gql_scheduler.live.retention import EventPruner
from gql_scheduler.live.subscribers import FeedEvent
from gql_scheduler.store.database import WRITE_OPTION, Database
from gql_scheduler.store.events import (
    EVENT_ORDER_LOCK_KEY,
    EventLog,
    EventRepository,
    PendingWrites,
    flush_pending,
)
from gql_scheduler.testing import FixedClock
from tests.engine_helpers import poll
from tests.graphql_client import running_client, settings_for
from tests.live_server import LiveServer, live_server
from tests.ws_client import StuckSubscriber, SubscriptionClient, subscription_client

JOB_EVENTS = "subscription($after: String) { jobEvents(after: $after) { id type jobId } }"
# About 2 kB per event, so that a few thousand events overflow any socket buffer.
# Large events, to fill the socket buffers of a subscriber that does not read.
FAT_ALIASES = [f"f{i}: jobId" for i in range(40)]
FAT_JOB_EVENTS = "subscription { jobEvents { " + " ".join(FAT_ALIASES) + " } }"
WRITERS = 6
BATCHES_PER_WRITER = 15
EVENTS_PER_BATCH = 5


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    settings = settings_for(
        database_url,
        subscriber_queue_size=1000,
        ws_keepalive_seconds=0,
        max_query_aliases=len(FAT_ALIASES),  # FAT_JOB_EVENTS is within the limits
    )
    async with live_server(settings) as running:
        yield running


async def write_job_events(database: Database, batches: int, per_batch: int) -> None:
    for _ in range(batches):
        async with database.write() as connection:
            events = EventRepository(connection)
            for _ in range(per_batch):
                job_id = str(uuid.uuid4())
                events.append_job_event(JobEventType.UPDATED, job_id=job_id, at=datetime.now(UTC))
        await asyncio.sleep(0)


async def all_event_ids(database: Database) -> list[int]:
    async with database.read() as connection:
        found = await EventLog(connection).read(after=0, limit=1_000_000, query=_everything())
    return [int(event.id) for event in found]


def _everything() -> object:
    from gql_scheduler.store.events import EventQuery

    return EventQuery()


async def take(stream: AsyncIterator[FeedEvent], count: int) -> list[int]:
    ids: list[int] = []
    async with asyncio.timeout(20):
        async for feed_event in stream:
            ids.append(feed_event.id)
            if len(ids) == count:
                break
    return ids


async def test_a_resume_during_concurrent_writes_gets_every_event_once_in_order(
    server: LiveServer,
) -> None:
    """Writers on several connections commit in any order; ids still follow commits, so a
    stream resumed from 0 in the middle of it all sees each event once, ascending."""
    database = server.container.database
    writers = [
        asyncio.create_task(write_job_events(database, BATCHES_PER_WRITER, EVENTS_PER_BATCH))
        for _ in range(WRITERS)
    ]
    # Resumed once writing is under way, so that it replays and goes live mid-stream.
    await poll(lambda: all_event_ids(database), lambda ids: len(ids) > 0)
    total = WRITERS * BATCHES_PER_WRITER * EVENTS_PER_BATCH
    stream = server.container.streams.job_events(job_id=None, after="0")
    try:
        received = await take(stream, total)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.gather(*writers)
    assert received == sorted(set(received))
    assert received == await all_event_ids(database)


async def test_a_resume_outgrowing_the_queue_reads_the_rest_from_the_outbox(
    database_url: str,
) -> None:
    """More events can arrive during a long replay than a subscriber's queue holds. That
    is not the subscriber being slow: its stream reads them from the outbox as well, and
    then goes on live, every event once and in order."""
    settings = settings_for(database_url, subscriber_queue_size=5, ws_keepalive_seconds=0)
    async with running_client(settings) as client:
        container = client.container
        await write_job_events(container.database, batches=1, per_batch=30)
        stream = container.streams.job_events(job_id=None, after="0")
        try:
            received = await take(stream, 1)  # registered, and replaying the first 30
            await write_job_events(container.database, batches=4, per_batch=5)

            async def dispatched() -> int:
                return container.feed.last_id

            await poll(dispatched, lambda last: last >= 50)  # 20 live ones: the queue overflowed
            received += await take(stream, 49)
            await write_job_events(container.database, batches=1, per_batch=1)
            received += await take(stream, 1)  # and live after that
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        assert received == await all_event_ids(container.database)
        assert len(received) == 51


async def test_pruning_keeps_the_retention_period_and_refuses_older_cursors(
    server: LiveServer,
) -> None:
    database = server.container.database
    await write_job_events(database, 3, 10)
    ids = await all_event_ids(database)
    later = FixedClock(datetime.now(UTC) + timedelta(hours=2))
    pruner = EventPruner(database, later, retention_seconds=3600)
    assert await pruner.prune_once() == len(ids) - 1  # the newest is kept (SQLite ids)
    assert await all_event_ids(database) == ids[-1:]
    live = server.container.streams
    with pytest.raises(Expired) as refused:
        await anext(live.job_events(job_id=None, after=str(ids[0])))
    assert refused.value.field == ("after",)
    async with subscription_client(server.ws_url) as client:
        await client.subscribe("old", JOB_EVENTS, {"after": str(ids[-3])})
        message = await client.receive()
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["errorCode"] == "EXPIRED"
        assert (await client.receive())["type"] == "complete"
        # Resuming from the horizon itself loses nothing: accepted, and live.
        await client.subscribe("ok", JOB_EVENTS, {"after": str(ids[-2])})
        replayed = await client.next_data()
    assert replayed["jobEvents"]["id"] == str(ids[-1])
    await write_job_events(database, 1, 1)
    assert (await all_event_ids(database))[-1] == ids[-1] + 1  # ids never go back


async def test_a_subscriber_that_stops_reading_is_closed_and_slows_no_one(
    server: LiveServer,
) -> None:
    feed = server.container.feed
    stuck = StuckSubscriber(server.ws_url, FAT_JOB_EVENTS)
    try:
        await stuck.start()
        async with subscription_client(server.ws_url) as healthy:
            await healthy.subscribe("1", JOB_EVENTS)

            async def subscribers() -> int:
                return feed.subscriber_count

            await poll(subscribers, lambda count: count == 2)
            total = 6000  # far past the stuck one's queue and socket buffers
            writing = asyncio.create_task(write_job_events(server.container.database, 120, 50))
            receiving = asyncio.create_task(_receive(healthy, total))
            # Dropped as too slow while the others go on.
            await poll(subscribers, lambda count: count == 1, within=30)
            # Its close frame waits behind what it has not read (the server's send honours
            # flow control), so it reads now: a client that never reads at all is closed by
            # the transport's keepalive instead (1011 after its ping timeout).
            code, reason = await stuck.read_until_closed()
            received = await receiving
            await writing
        ids = [int(item["jobEvents"]["id"]) for item in received]
        assert ids == sorted(set(ids))
        assert len(ids) == total
    finally:
        stuck.close()
    assert code == TOO_SLOW_CLOSE_CODE
    assert reason == TOO_SLOW_REASON


async def test_a_too_slow_subscriber_that_goes_away_before_its_close_is_sent_ends_quietly(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Its 4008 close waits behind the data it has not read. If the connection ends first
    (the client leaves, or the transport's keepalive closes it with 1011), the waiting close
    fails: that is expected, neither logged as a failure nor left as an unretrieved task
    exception."""
    feed = server.container.feed
    stuck = StuckSubscriber(server.ws_url, FAT_JOB_EVENTS)
    writing: asyncio.Task[None] | None = None
    try:
        await stuck.start()

        async def subscribers() -> int:
            return feed.subscriber_count

        await poll(subscribers, lambda count: count == 1)
        writing = asyncio.create_task(write_job_events(server.container.database, 120, 50))
        with caplog.at_level(logging.WARNING):
            await poll(subscribers, lambda count: count == 0, within=30)  # dropped
            assert len(subscriptions.closing) == 1  # its close, waiting to be sent
        stuck.close()  # gone with data unread: the connection is reset
        with caplog.at_level(logging.WARNING):
            async with asyncio.timeout(10):
                await subscriptions.closing.wait()
            gc.collect()  # an unretrieved task exception is reported when collected
    finally:
        stuck.close()
        if writing is not None:
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def _receive(client: SubscriptionClient, count: int) -> list[dict[str, Any]]:
    return [await client.next_data() for _ in range(count)]


async def test_event_ids_follow_commit_order_even_when_writers_interleave(
    server: LiveServer,
) -> None:
    """Writer A inserts its event and has not committed when writer B tries: B must wait,
    or B's larger id would be read first and a reader resuming after it would skip A's."""
    database = server.container.database
    stream = server.container.streams.job_events(job_id=None, after=None)
    first = asyncio.ensure_future(take(stream, 2))
    await poll(_count(server), lambda count: count == 1)
    async with _open_write(database) as writer_a:
        await flush_pending(writer_a, _one_job_event())
        writer_b = asyncio.create_task(_write_one(database))
        await _until_waiting_for_its_turn(database, writer_b)
        assert not writer_b.done(), "a second event writer went ahead of an open one"
    await writer_b
    received = await first
    await stream.aclose()  # type: ignore[attr-defined]
    assert received == await all_event_ids(database)
    assert len(received) == 2


async def _until_waiting_for_its_turn(database: Database, writer: asyncio.Task[None]) -> None:
    """Until `writer` provably cannot commit before the open event writer does.

    PostgreSQL: it waits for the event-order lock (the feature under test). SQLite: the
    open writer holds the file's write lock, which any other writer must wait for.
    """
    if database.is_sqlite:
        assert database.checkpointer is not None
        path = database.checkpointer.path
        await asyncio.to_thread(_assert_write_locked, path)
        return
    key = EVENT_ORDER_LOCK_KEY
    query = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid::bigint = :high AND objid::bigint = :low"
    )
    params = {"high": key >> 32, "low": key & 0xFFFFFFFF}

    async def waiters() -> int:
        assert not writer.done(), "a second event writer went ahead of an open one"
        async with database.read() as connection:
            return int(await connection.scalar(query, params) or 0)

    await poll(waiters, lambda count: count > 0)


def _assert_write_locked(path: Path) -> None:
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("BEGIN IMMEDIATE")
    finally:
        probe.close()


def _count(server: LiveServer) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return server.container.feed.subscriber_count

    return count


def _one_job_event() -> PendingWrites:
    writes = PendingWrites()
    job_id = str(uuid.uuid4())
    writes.rows.append(
        {
            "kind": "JOB",
            "type": JobEventType.UPDATED.value,
            "at": datetime.now(UTC),
            "job_id": job_id,
            "execution_id": None,
            "actor": None,
            "payload": None,
        }
    )
    return writes


@asynccontextmanager
async def _open_write(database: Database) -> AsyncIterator[AsyncConnection]:
    """A write transaction like Database.write(), held open by the test."""
    async with database.engine.connect() as connection:
        connection = await connection.execution_options(**{WRITE_OPTION: True})
        async with connection.begin():
            yield connection


async def _write_one(database: Database) -> None:
    async with _open_write(database) as connection:
        await flush_pending(connection, _one_job_event())


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_listener_reconnects_and_fills_the_gap_from_the_outbox(
    server: LiveServer,
) -> None:
    container = server.container
    broker = container.broker
    assert isinstance(broker, PostgresBroker)
    container.feed.poll_seconds = 3600  # only signals may wake the feed in this test
    broker.reconnect_delay = 1.0  # a gap that certainly outlasts the commit below
    stream = container.streams.job_events(job_id=None, after=None)
    received = asyncio.ensure_future(take(stream, 3))
    await poll(_count(server), lambda count: count == 1)
    await write_job_events(container.database, 1, 1)  # delivered through NOTIFY
    listener_pid = broker.listener_pid()
    # Two events committed by the transaction that cuts the listener off: their NOTIFY is
    # sent on commit, before the listener can be back.
    async with container.database.write() as connection:
        await connection.execute(sa.text(f"SELECT pg_terminate_backend({listener_pid}, 5000)"))
        for _ in range(2):
            EventRepository(connection).append_job_event(
                JobEventType.UPDATED, job_id=str(uuid.uuid4()), at=datetime.now(UTC)
            )
    await poll(_listener_pid(broker), lambda pid: pid not in (None, listener_pid), within=10)
    ids = await received
    await stream.aclose()  # type: ignore[attr-defined]
    assert ids == await all_event_ids(container.database)


def _listener_pid(broker: PostgresBroker) -> Callable[[], Awaitable[int | None]]:
    async def pid() -> int | None:
        return broker.listener_pid()

    return pid
