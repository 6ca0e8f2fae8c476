"""Two server processes on one PostgreSQL database: job changes and events cross over.

The reconcile loop is set to an hour, so that only the broker (LISTEN/NOTIFY) can carry a
change from one instance to the other within the test.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.processes import wait_for
from tests.test_engine_processes import (
    EVERY_SECOND,
    SETTLE_TIMEOUT,
    Run,
    Server,
    create_job,
    execution,
    executions,
    now,
    serve,
    sleep_action,
    table,
)
from tests.ws_client import SubscriptionClient, subscription_client

NO_RECONCILE = {"GQL_SCHEDULER_RECONCILE_SECONDS": "3600"}
# Nor does the event feed poll the outbox: only NOTIFY can wake it.
NO_SAFETY_NETS = {**NO_RECONCILE, "GQL_SCHEDULER_EVENT_POLL_SECONDS": "3600"}
UPDATE_SCHEDULE = """
mutation($id: ID!, $input: UpdateJobInput!) {
  updateJob(id: $id, input: $input) { job { id } errors { field message } }
}
"""
TRIGGER = "mutation($id: ID!) { triggerJob(id: $id, force: true) { execution { id } } }"
EVENTS = """
subscription($jobId: ID, $after: String) {
  executionEvents(jobId: $jobId, after: $after) { id type execution { id instance status } }
}
"""
EVERY_TWO_SECONDS = {"cron": {"expression": "*/2 * * * * *"}}


def runs_by(server_runs: list[Run], instance: str) -> list[Run]:
    return [run for run in server_runs if run.instance == instance]


@pytest.mark.timeout(90)
@pytest.mark.postgres
@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_job_changes_on_one_instance_reach_the_other_within_a_second(
    tmp_path: Path, empty_database_url: str
) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(serve(tmp_path, empty_database_url, "a", **NO_RECONCILE))
        b = stack.enter_context(serve(tmp_path, empty_database_url, "b", **NO_RECONCILE))
        # B started before the job existed: only A's notification can arm B's timer.
        created_at = now()
        job_id = create_job(a, "made-on-a", EVERY_SECOND)
        a.kill()
        fired_by_b = wait_for(
            lambda: runs_by(executions(b, job_id), "b")[:2] or None,
            timeout=SETTLE_TIMEOUT,
            describe=lambda: table(executions(b, job_id)),
            alive=[b.started],
        )
        first = fired_by_b[0]
        assert first.trigger == "SCHEDULE", table(fired_by_b)  # on time, not caught up
        assert first.scheduled_for <= created_at + timedelta(seconds=2), table(fired_by_b)

        # A second instance changes the schedule and dies: B follows the new one.
        a2 = stack.enter_context(serve(tmp_path, empty_database_url, "a2", **NO_RECONCILE))
        changes = {"schedules": [EVERY_TWO_SECONDS]}
        payload = a2.data(UPDATE_SCHEDULE, {"id": job_id, "input": changes})["updateJob"]
        assert payload["errors"] == []
        updated_at = now()
        a2.kill()
        settled_from = updated_at + timedelta(seconds=1)
        later = wait_for(
            lambda: (
                [r for r in executions(b, job_id) if r.scheduled_for > settled_from][3:] or None
            ),
            timeout=SETTLE_TIMEOUT,
            describe=lambda: table(executions(b, job_id)),
            alive=[b.started],
        )
    after_change = [run for run in later if run.scheduled_for > settled_from]
    assert all(run.scheduled_for.second % 2 == 0 for run in after_change), table(after_change)
    assert all(run.instance == "b" for run in after_change), table(after_change)


@pytest.mark.timeout(90)
@pytest.mark.postgres
@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
async def test_a_subscriber_on_one_instance_sees_the_runs_of_the_other(
    tmp_path: Path, empty_database_url: str
) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(serve(tmp_path, empty_database_url, "a", **NO_SAFETY_NETS))
        b = stack.enter_context(serve(tmp_path, empty_database_url, "b", **NO_SAFETY_NETS))
        job_id = create_job(a, "watched", {"cron": {"expression": "0 0 1 1 *"}})
        url = b.base_url.replace("http://", "ws://") + "/graphql"
        async with subscription_client(url) as client:
            # From the start of the job's history: the first run's events reach B whether it
            # registers before or after that run (by replay), and once they have, B is live.
            await client.subscribe("1", EVENTS, {"jobId": job_id, "after": "0"})
            first = await _trigger_and_watch(a, job_id, client)
            # The second run happens while B listens: only A's NOTIFY can bring it.
            second = await _trigger_and_watch(a, job_id, client)
    for execution_id, events in (first, second):
        assert [event["type"] for event in events] == ["QUEUED", "STARTED", "SUCCEEDED"]
        assert {event["execution"]["id"] for event in events} == {execution_id}
        assert events[-1]["execution"]["instance"] == "a"  # run by A, seen on B


async def _trigger_and_watch(
    server: Server, job_id: str, client: SubscriptionClient
) -> tuple[str, list[dict[str, Any]]]:
    """Run the job now on `server`; its id and the three events the client receives of it."""
    triggered = await asyncio.to_thread(server.data, TRIGGER, {"id": job_id})
    events = [(await client.next_data())["executionEvents"] for _ in range(3)]
    return triggered["triggerJob"]["execution"]["id"], events


CANCEL = "mutation($id: ID!) { cancelExecution(id: $id) { execution { status } errors { code } } }"


@pytest.mark.timeout(90)
@pytest.mark.postgres
@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_cancelling_on_one_instance_stops_the_run_on_the_other_at_once(
    tmp_path: Path, empty_database_url: str
) -> None:
    # A long lease: the owner's renewal (a third of it, 20 s) would notice the request only
    # after SETTLE_TIMEOUT; the broker tells it at once.
    slow = {"GQL_SCHEDULER_LEASE_SECONDS": "60", **NO_RECONCILE}
    with ExitStack() as stack:
        a = stack.enter_context(serve(tmp_path, empty_database_url, "a", **slow))
        b = stack.enter_context(serve(tmp_path, empty_database_url, "b", **slow))
        job_id = create_job(
            a, "long", {"cron": {"expression": "0 0 1 1 *"}}, action=sleep_action(30)
        )
        execution_id = a.data(TRIGGER, {"id": job_id})["triggerJob"]["execution"]["id"]
        wait_for(
            lambda: execution(b, execution_id).status == "RUNNING",
            timeout=SETTLE_TIMEOUT,
            describe=lambda: table(executions(b, job_id)),
            alive=[a.started, b.started],
        )
        b.data(CANCEL, {"id": execution_id})
        ended = wait_for(
            lambda: (run := execution(b, execution_id)).status == "CANCELLED" and run,
            timeout=SETTLE_TIMEOUT,
            describe=lambda: table(executions(b, job_id)),
            alive=[a.started, b.started],
        )
    assert ended.instance == "a"
