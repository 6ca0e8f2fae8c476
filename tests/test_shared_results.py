"""Each event's result is computed once per distinct subscription document, then shared.

A unit test of the schema with an in-memory stand-in for the live service: the point is
the GraphQL execution, and the real feed is covered by the websocket tests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from gql_scheduler.api.context import Context
from gql_scheduler.api.schema import build_schema
from gql_scheduler.api.shared_results import SharedData, encode_message
from gql_scheduler.domain.events import JobEvent, JobEventType
from gql_scheduler.live.subscribers import FeedEvent

DOCUMENT = "subscription { jobEvents { id type jobId } }"
OTHER_DOCUMENT = "subscription { jobEvents { id jobId } }"
AT = datetime(2026, 1, 1, tzinfo=UTC)


class FixedFeedEvents:
    """Yields the same FeedEvent objects to every subscriber, as the feed does."""

    def __init__(self, feed_events: list[FeedEvent]) -> None:
        self.feed_events = feed_events

    async def job_events(self, **_filters: Any) -> AsyncIterator[FeedEvent]:
        for feed_event in self.feed_events:
            yield feed_event


def context(streams: FixedFeedEvents) -> Context:
    jobs = SimpleNamespace(get_many=None)
    executions = SimpleNamespace(get_many=None, latest_of_jobs=None)
    return Context(
        request=None,  # type: ignore[arg-type]
        response=None,
        jobs=jobs,  # type: ignore[arg-type]
        executions=executions,  # type: ignore[arg-type]
        streams=streams,  # type: ignore[arg-type]
        server=None,  # type: ignore[arg-type]
    )


async def results(document: str, live: FixedFeedEvents) -> list[Any]:
    stream = await build_schema().subscribe(document, context_value=context(live))
    return [result.data async for result in stream]  # type: ignore[union-attr]


async def test_subscribers_with_the_same_document_share_each_result() -> None:
    feed_events = [
        FeedEvent(JobEvent(id=str(n), type=JobEventType.UPDATED, at=AT, job_id=f"job-{n}"))
        for n in (1, 2)
    ]
    live = FixedFeedEvents(feed_events)
    first = await results(DOCUMENT, live)
    second = await results(DOCUMENT, live)
    assert (
        first
        == second
        == [
            {"jobEvents": {"id": "1", "type": "UPDATED", "jobId": "job-1"}},
            {"jobEvents": {"id": "2", "type": "UPDATED", "jobId": "job-2"}},
        ]
    )
    # One result per event for the two subscribers: computed once, then shared.
    assert [len(feed_event.shared) for feed_event in feed_events] == [1, 1]
    other = await results(OTHER_DOCUMENT, live)
    assert other[0] == {"jobEvents": {"id": "1", "jobId": "job-1"}}
    assert [len(feed_event.shared) for feed_event in feed_events] == [2, 2]


def test_a_shared_result_is_encoded_once_and_reads_the_same() -> None:
    data = SharedData({"jobEvents": {"id": "7", "jobId": 'quote " and é'}})
    message = {"id": "op-1", "type": "next", "payload": {"data": data}}
    encoded = encode_message(message)
    assert encoded is not None
    assert json.loads(encoded) == message
    assert encode_message({"id": "op-2", "type": "next", "payload": {"data": data}}) == (
        encoded.replace("op-1", "op-2")
    )
    with_errors = {"id": "1", "type": "next", "payload": {"data": data, "errors": []}}
    assert encode_message(with_errors) is None  # only the plain shape takes the shortcut
    assert encode_message({"id": "1", "type": "next", "payload": {"data": {}}}) is None
