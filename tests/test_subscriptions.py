"""Subscriptions over real websockets on a real server, both protocols, both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests import queries
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.ws_client import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, subscription_client

EXECUTION_EVENTS = """
subscription($jobId: ID, $statuses: [ExecutionStatus!], $after: String) {
  executionEvents(jobId: $jobId, statuses: $statuses, after: $after) {
    id type at execution { id jobId status trigger job { name } }
  }
}
"""

JOB_EVENTS = """
subscription($jobId: ID, $after: String) {
  jobEvents(jobId: $jobId, after: $after) { id type jobId job { name state } }
}
"""

TRIGGER = """
mutation($id: ID!) { triggerJob(id: $id, force: true) { execution { id } errors { code } } }
"""
ONE_RUN = ["QUEUED", "STARTED", "SUCCEEDED"]


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(settings_for(database_url, ws_keepalive_seconds=0.2)) as running:
        yield running


async def create_job(server: LiveServer, name: str, **fields: Any) -> str:
    data = await server.data(queries.CREATE_JOB, {"input": queries.job_input(name, **fields)})
    assert data["createJob"]["errors"] == [], data
    job_id: str = data["createJob"]["job"]["id"]
    return job_id


async def trigger(server: LiveServer, job_id: str) -> str:
    data = await server.data(TRIGGER, {"id": job_id})
    execution_id: str = data["triggerJob"]["execution"]["id"]
    return execution_id


def types(events: list[dict[str, Any]], key: str) -> list[str]:
    return [event[key]["type"] for event in events]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_execution_events_arrive_live_over_both_protocols(
    server: LiveServer, protocol: str
) -> None:
    job_id = await create_job(server, "live")
    async with subscription_client(server.ws_url, protocol) as client:
        await client.subscribe("1", EXECUTION_EVENTS, {"jobId": job_id})
        await _until_subscribed(server)
        execution_id = await trigger(server, job_id)
        events = await client.collect(3)
    assert types(events, "executionEvents") == ONE_RUN
    ids = [int(event["executionEvents"]["id"]) for event in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    last = events[-1]["executionEvents"]["execution"]
    assert last == {
        "id": execution_id,
        "jobId": job_id,
        "status": "SUCCEEDED",
        "trigger": "MANUAL",
        "job": {"name": "live"},
    }


async def test_filters_pick_the_job_and_the_statuses(server: LiveServer) -> None:
    wanted = await create_job(server, "wanted")
    other = await create_job(server, "other")
    async with subscription_client(server.ws_url) as client:
        variables = {"jobId": wanted, "statuses": ["SUCCEEDED"]}
        await client.subscribe("1", EXECUTION_EVENTS, variables)
        await _until_subscribed(server)
        await trigger(server, other)
        await trigger(server, wanted)
        await trigger(server, other)
        second = await trigger(server, wanted)
        events = await client.collect(2)
        # Events arrive in id order: anything the filters let through from the runs above
        # would come before this last run's success.
        marker = await trigger(server, wanted)
        last = await client.next_data()
    assert types(events, "executionEvents") == ["SUCCEEDED", "SUCCEEDED"]
    assert {event["executionEvents"]["execution"]["jobId"] for event in events} == {wanted}
    assert events[-1]["executionEvents"]["execution"]["id"] == second
    assert last["executionEvents"]["execution"]["id"] == marker
    assert last["executionEvents"]["type"] == "SUCCEEDED"


async def test_a_dashboard_resumes_after_a_disconnect_without_gap_or_duplicate(
    server: LiveServer,
) -> None:
    job_id = await create_job(server, "resumable")
    async with subscription_client(server.ws_url) as client:
        await client.subscribe("1", EXECUTION_EVENTS, {"jobId": job_id})
        await _until_subscribed(server)
        await trigger(server, job_id)
        before = await client.collect(3)
    last_seen = before[-1]["executionEvents"]["id"]
    missed = [await trigger(server, job_id) for _ in range(3)]  # while disconnected
    await _until_finished(server, missed)
    async with subscription_client(server.ws_url) as client:
        await client.subscribe("1", EXECUTION_EVENTS, {"jobId": job_id, "after": last_seen})
        replayed = await client.collect(9)
        live = await trigger(server, job_id)
        after_seam = await client.collect(3)
    replayed_ids = [int(event["executionEvents"]["id"]) for event in replayed]
    assert replayed_ids == sorted(set(replayed_ids))
    assert replayed_ids[0] > int(last_seen)
    assert [event["executionEvents"]["execution"]["id"] for event in replayed[::3]] == missed
    assert types(replayed, "executionEvents") == ONE_RUN * 3
    assert int(after_seam[0]["executionEvents"]["id"]) > replayed_ids[-1]
    assert {event["executionEvents"]["execution"]["id"] for event in after_seam} == {live}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_job_events_follow_the_job_through_its_life(
    server: LiveServer, protocol: str
) -> None:
    async with subscription_client(server.ws_url, protocol) as client:
        await client.subscribe("all", JOB_EVENTS)
        await _until_subscribed(server)
        job_id = await create_job(server, "lifecycle")
        await server.data(queries.PAUSE_JOB, {"id": job_id})
        await server.data(queries.RESUME_JOB, {"id": job_id})
        await server.data(queries.DELETE_JOB, {"id": job_id})
        events = [event["jobEvents"] for event in await client.collect(4)]
    assert [event["type"] for event in events] == ["CREATED", "PAUSED", "RESUMED", "DELETED"]
    assert {event["jobId"] for event in events} == {job_id}
    assert events[0]["job"] == {"name": "lifecycle", "state": "ACTIVE"}  # read at delivery
    assert events[-1]["job"] is None


async def test_job_events_resume_with_after_and_filter_by_job(server: LiveServer) -> None:
    first = await create_job(server, "first")
    second = await create_job(server, "second")
    await server.data(queries.PAUSE_JOB, {"id": first})
    async with subscription_client(server.ws_url) as client:
        await client.subscribe("1", JOB_EVENTS, {"jobId": first, "after": "0"})
        events = [event["jobEvents"] for event in await client.collect(2)]
        await server.data(queries.PAUSE_JOB, {"id": second})
        await server.data(queries.RESUME_JOB, {"id": first})
        events.append((await client.next_data())["jobEvents"])
    assert [(event["type"], event["jobId"]) for event in events] == [
        ("CREATED", first),
        ("PAUSED", first),
        ("RESUMED", first),
    ]


@pytest.mark.parametrize(
    ("after", "code"), [("not-an-id", "INVALID"), ("-1", "INVALID"), ("1" * 30, "INVALID")]
)
async def test_a_bad_cursor_is_a_coded_error(server: LiveServer, after: str, code: str) -> None:
    async with subscription_client(server.ws_url) as client:
        await client.subscribe("1", EXECUTION_EVENTS, {"after": after})
        message = await client.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["errorCode"] == code
    assert errors[0]["extensions"]["field"] == ["after"]
    assert "Traceback" not in str(errors)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_keep_alive_pings_are_on(server: LiveServer, protocol: str) -> None:
    async with subscription_client(server.ws_url, protocol) as client:
        await client.subscribe("1", JOB_EVENTS)
        await client.wait_for_keepalives(2)


async def test_a_disconnected_subscriber_is_cleaned_up(server: LiveServer) -> None:
    feed = server.container.feed
    async with subscription_client(server.ws_url, LEGACY_WS) as first:
        await first.subscribe("1", JOB_EVENTS)
        async with subscription_client(server.ws_url, TRANSPORT_WS) as second:
            await second.subscribe("1", EXECUTION_EVENTS)
            await second.subscribe("2", JOB_EVENTS)
            await _until_subscribed(server, count=3)
        await _until_subscribed(server, count=1)
    await _until_subscribed(server, count=0)
    assert feed.subscriber_count == 0


async def _until_subscribed(server: LiveServer, count: int = 1) -> None:
    """Wait (bounded) until the feed has exactly `count` subscriptions registered."""
    from tests.engine_helpers import poll

    async def current() -> int:
        return server.container.feed.subscriber_count

    await poll(current, lambda seen: seen == count, within=5.0)


async def _until_finished(server: LiveServer, execution_ids: list[str]) -> None:
    from tests.engine_helpers import poll

    query = "query($id: ID!) { execution(id: $id) { status } }"

    async def statuses() -> list[str]:
        found = [await server.data(query, {"id": i}) for i in execution_ids]
        return [item["execution"]["status"] for item in found]

    await poll(statuses, lambda seen: all(s == "SUCCEEDED" for s in seen), within=10.0)
