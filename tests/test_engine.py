"""The engine in one process: timers fire on time, runs are recorded, policies hold."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import queries
from tests.engine_helpers import (
    TRIGGER,
    create_job,
    executions,
    poll,
    terminal,
    wait_for,
    with_status,
)
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.store_probe import insert_lost_run, job_events

pytestmark = pytest.mark.asyncio

SLEEP = {"handler": {"name": "sleep", "args": {"seconds": 0.6}}}


def every(seconds: float) -> list[dict[str, Any]]:
    return [{"interval": {"everySeconds": seconds}}]


async def _until(instant: datetime) -> None:
    """Let real time pass up to `instant`: the scenario needs the clock itself to move."""
    await asyncio.sleep(max((instant - datetime.now(UTC)).total_seconds(), 0.0))


def instants(items: list[dict[str, Any]], key: str = "scheduledFor") -> list[datetime]:
    return [datetime.fromisoformat(item[key]) for item in items]


async def test_an_interval_job_fires_every_occurrence_once(client: GraphQLClient) -> None:
    job_id = await create_job(
        client, schedules=every(0.2), action={"handler": {"name": "echo", "args": {"n": 1}}}
    )
    runs = await wait_for(client, job_id, lambda seen: len(with_status(seen, "SUCCEEDED")) >= 6)
    done = with_status(runs, "SUCCEEDED")
    # On a loaded machine a run's finish can outlast the 0.2 s interval, and the
    # default overlap policy then records the next occurrence as SKIPPED: it is
    # still an occurrence with exactly one execution.
    last = max(instants(done))
    settled = [run for run in runs if datetime.fromisoformat(run["scheduledFor"]) <= last]
    assert {run["status"] for run in settled} <= {"SUCCEEDED", "SKIPPED"}
    times = sorted(instants(settled))
    assert times == sorted(set(times))  # one execution per occurrence
    gaps = {round((b - a).total_seconds(), 6) for a, b in itertools.pairwise(times)}
    assert gaps == {0.2}  # on the grid, none missing
    first = done[0]
    assert first["trigger"] == "SCHEDULE"
    assert (first["attempt"], first["instance"]) == (1, "test-instance")
    assert json.loads(first["output"]) == {"n": 1}
    assert first["driftMs"] >= 0
    assert first["durationMs"] >= 0
    job = (
        await client.data(
            "query($id: ID) { job(id: $id) { lastRunAt lastExecution { id } "
            "stats { total succeeded failed successRate avgDurationMs p95DriftMs } } }",
            {"id": job_id},
        )
    )["job"]
    assert job["lastRunAt"] is not None
    assert job["stats"]["succeeded"] >= 6
    assert job["stats"]["successRate"] == 1.0
    assert job["stats"]["p95DriftMs"] is not None


async def test_a_paused_job_does_not_fire_and_resumes(client: GraphQLClient) -> None:
    # A control job on the same schedule shows the time in which the paused one would
    # have fired: while the control runs five times, the paused one must not run at all.
    job_id = await create_job(client, schedules=every(0.1), paused=True)
    control = await create_job(client, "control", schedules=every(0.1))
    await wait_for(client, control, lambda seen: len(seen) >= 5)
    assert await executions(client, job_id) == []
    await client.data(queries.RESUME_JOB, {"id": job_id})
    await wait_for(client, job_id, lambda seen: len(seen) >= 2)
    await client.data(queries.PAUSE_JOB, {"id": job_id})
    # A run claimed just before the pause committed may still end; then nothing more.
    settled = await wait_for(client, job_id, terminal)
    controls = len(await executions(client, control))
    await wait_for(client, control, lambda seen: len(seen) >= controls + 5)
    assert len(await executions(client, job_id)) == len(settled)


async def test_a_one_off_job_runs_once_then_completes(client: GraphQLClient) -> None:
    at = datetime.now(UTC) + timedelta(seconds=1)
    job_id = await create_job(client, schedules=[{"once": {"at": at.isoformat()}}])
    runs = await wait_for(client, job_id, lambda seen: with_status(seen, "SUCCEEDED") != [])
    assert len(runs) == 1
    assert datetime.fromisoformat(runs[0]["scheduledFor"]) == at.replace(microsecond=at.microsecond)
    job = (await client.data(queries.JOB, {"id": job_id}))["job"]
    assert job["state"] == "COMPLETED"
    assert job["nextRunAt"] is None
    kinds = [kind for _, kind, job in await job_events(client.container.database) if job == job_id]
    assert kinds == ["CREATED", "COMPLETED"]


async def test_a_job_completes_at_its_end(client: GraphQLClient) -> None:
    # An explicit anchor, so that the runs before the end do not depend on how long the
    # request takes: three, at the anchor and 0.2 s and 0.4 s after it.
    anchor = datetime.now(UTC) + timedelta(seconds=2)
    end = anchor + timedelta(seconds=0.5)
    schedule = {"interval": {"everySeconds": 0.2, "anchor": anchor.isoformat()}}
    job_id = await create_job(client, schedules=[schedule], endAt=end.isoformat())
    await poll(
        lambda: client.data(queries.JOB, {"id": job_id}),
        lambda data: data["job"]["state"] == "COMPLETED",
    )
    runs = await executions(client, job_id)
    expected = [anchor + timedelta(seconds=0.2 * k) for k in range(3)]
    assert instants(runs) == expected


async def test_skip_overlap_records_skipped_runs(client: GraphQLClient) -> None:
    job_id = await create_job(client, schedules=every(0.2), action=SLEEP, overlapPolicy="SKIP")
    runs = await wait_for(client, job_id, lambda seen: len(with_status(seen, "SUCCEEDED")) >= 2)
    skipped = with_status(runs, "SKIPPED")
    assert skipped
    assert all("still going" in run["error"] for run in skipped)
    assert_never_overlapping(with_status(runs, "SUCCEEDED"))


async def test_allow_overlap_runs_concurrently(client: GraphQLClient) -> None:
    job_id = await create_job(client, schedules=every(0.2), action=SLEEP, overlapPolicy="ALLOW")
    runs = await wait_for(client, job_id, lambda seen: len(with_status(seen, "SUCCEEDED")) >= 3)
    assert with_status(runs, "SKIPPED") == []
    done = with_status(runs, "SUCCEEDED")
    starts, ends = instants(done, "startedAt"), instants(done, "finishedAt")
    assert starts[1] < ends[0]  # the second started before the first ended


async def test_buffer_one_keeps_one_waiting_run(client: GraphQLClient) -> None:
    job_id = await create_job(
        client, schedules=every(0.15), action=SLEEP, overlapPolicy="BUFFER_ONE"
    )
    runs = await wait_for(client, job_id, lambda seen: len(with_status(seen, "SUCCEEDED")) >= 3)
    assert len(with_status(runs, "QUEUED")) <= 1
    assert with_status(runs, "SKIPPED")
    done = with_status(runs, "SUCCEEDED")
    assert_never_overlapping(done)
    # The second run was due while the first still went (a buffered occurrence, not a
    # later tick) and started once the first had ended.
    starts, ends = instants(done, "startedAt"), instants(done, "finishedAt")
    assert instants(done, "scheduledFor")[1] < ends[0] <= starts[1]


async def test_cancel_running_replaces_the_running_one(client: GraphQLClient) -> None:
    long_sleep = {"handler": {"name": "sleep", "args": {"seconds": 30}}}
    job_id = await create_job(
        client, schedules=every(0.3), action=long_sleep, overlapPolicy="CANCEL_RUNNING"
    )
    runs = await wait_for(client, job_id, lambda seen: len(with_status(seen, "CANCELLED")) >= 2)
    cancelled = with_status(runs, "CANCELLED")
    assert all("replaced" in run["error"] for run in cancelled)
    assert len(with_status(runs, "RUNNING")) <= 1


async def test_timeout_stops_the_work(client: GraphQLClient) -> None:
    long_sleep = {"handler": {"name": "sleep", "args": {"seconds": 30}}}
    job_id = await create_job(client, action=long_sleep, timeoutSeconds=0.3)
    await client.data(TRIGGER, {"id": job_id})
    (run,) = await wait_for(client, job_id, lambda seen: with_status(seen, "TIMED_OUT") != [])
    assert run["error"] == "timed out after 0.3 s"
    assert 250 <= run["durationMs"] < 5000


async def test_failures_retry_with_backoff_as_new_executions(client: GraphQLClient) -> None:
    job_id = await create_job(
        client,
        action={"handler": {"name": "fail", "args": {"message": "upstream down"}}},
        retry={"maxAttempts": 3, "initialDelaySeconds": 0.1, "jitter": False},
    )
    await client.data(TRIGGER, {"id": job_id})
    runs = await wait_for(client, job_id, lambda seen: len(seen) == 3 and terminal(seen))
    assert [run["attempt"] for run in runs] == [1, 2, 3]
    assert [run["trigger"] for run in runs] == ["MANUAL", "RETRY", "RETRY"]
    assert [run["status"] for run in runs] == ["FAILED"] * 3
    assert all(run["error"] == "upstream down" for run in runs)
    assert runs[1]["retryOf"]["id"] == runs[0]["id"]
    assert runs[2]["retryOf"]["id"] == runs[1]["id"]
    # Backoff: 0.1 s, then 0.2 s, between one attempt's end and the next one's start.
    first_gap = instants(runs[1:2], "startedAt")[0] - instants(runs[:1], "finishedAt")[0]
    second_gap = instants(runs[2:], "startedAt")[0] - instants(runs[1:2], "finishedAt")[0]
    assert first_gap >= timedelta(seconds=0.1)
    assert second_gap >= timedelta(seconds=0.2)
    # No fourth attempt: a retry is created in the transaction that records the failure
    # before it, so three ended attempts and no fourth were seen at one moment above.


async def test_at_most_once_never_retries(client: GraphQLClient) -> None:
    job_id = await create_job(
        client,
        action={"handler": {"name": "fail"}},
        retry={"maxAttempts": 3, "initialDelaySeconds": 0.05},
        delivery="AT_MOST_ONCE",
    )
    await client.data(TRIGGER, {"id": job_id})
    runs = await wait_for(client, job_id, lambda seen: with_status(seen, "FAILED") != [])
    # A retry would have been created in the transaction that recorded the failure.
    assert len(runs) == 1


async def test_trigger_respects_overlap_unless_forced(client: GraphQLClient) -> None:
    long_sleep = {"handler": {"name": "sleep", "args": {"seconds": 30}}}
    job_id = await create_job(client, action=long_sleep)
    first = (await client.data(TRIGGER, {"id": job_id}))["triggerJob"]
    assert first["errors"] == []
    assert first["execution"]["status"] == "RUNNING"
    assert first["execution"]["trigger"] == "MANUAL"
    second = (await client.data(TRIGGER, {"id": job_id}))["triggerJob"]["execution"]
    assert second["status"] == "SKIPPED"
    forced = (await client.data(TRIGGER, {"id": job_id, "force": True}))["triggerJob"]
    assert forced["execution"]["status"] == "RUNNING"
    missing = (await client.data(TRIGGER, {"id": "nope"}))["triggerJob"]
    assert missing["errors"][0]["code"] == "NOT_FOUND"


CANCEL = """mutation($id: ID!) { cancelExecution(id: $id) {
  execution { id status error } errors { field message code } } }"""
RETRY = """mutation($id: ID!) { retryExecution(id: $id) {
  execution { id status trigger attempt retryOf { id } } errors { field message code } } }"""


async def test_cancel_a_running_execution(client: GraphQLClient) -> None:
    long_sleep = {"handler": {"name": "sleep", "args": {"seconds": 30}}}
    job_id = await create_job(client, action=long_sleep)
    run = (await client.data(TRIGGER, {"id": job_id}))["triggerJob"]["execution"]
    cancelled = (await client.data(CANCEL, {"id": run["id"]}))["cancelExecution"]
    assert cancelled["errors"] == []
    assert cancelled["execution"]["status"] == "CANCELLED"
    assert cancelled["execution"]["error"] == "cancelled by request"
    again = (await client.data(CANCEL, {"id": run["id"]}))["cancelExecution"]
    assert (again["errors"][0]["code"], again["errors"][0]["field"]) == ("CONFLICT", ["id"])
    missing = (await client.data(CANCEL, {"id": "424242"}))["cancelExecution"]
    assert (missing["errors"][0]["code"], missing["errors"][0]["field"]) == ("NOT_FOUND", ["id"])


async def test_retry_execution(client: GraphQLClient) -> None:
    job_id = await create_job(client, action={"handler": {"name": "fail"}})
    run = (await client.data(TRIGGER, {"id": job_id}))["triggerJob"]["execution"]
    await wait_for(client, job_id, lambda seen: with_status(seen, "FAILED") != [])
    retried = (await client.data(RETRY, {"id": run["id"]}))["retryExecution"]
    assert retried["errors"] == []
    assert retried["execution"]["trigger"] == "RETRY"
    assert retried["execution"]["attempt"] == 2
    assert retried["execution"]["retryOf"]["id"] == run["id"]

    ok_job = await create_job(client, "ok")
    ok = (await client.data(TRIGGER, {"id": ok_job}))["triggerJob"]["execution"]
    await wait_for(client, ok_job, lambda seen: with_status(seen, "SUCCEEDED") != [])
    refused = (await client.data(RETRY, {"id": ok["id"]}))["retryExecution"]
    assert (refused["errors"][0]["code"], refused["errors"][0]["field"]) == ("CONFLICT", ["id"])


BACKFILL = """mutation($id: ID!, $from: DateTime!, $to: DateTime!) {
  backfillJob(id: $id, from: $from, to: $to) {
    executions { id scheduledFor trigger } errors { field message code } } }"""


async def test_backfill_creates_each_missing_occurrence_once(client: GraphQLClient) -> None:
    job_id = await create_job(client, schedules=[queries.cron("* * * * *")])
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    window = {"id": job_id, "from": (end - timedelta(minutes=5)).isoformat(), "to": end.isoformat()}
    created = (await client.data(BACKFILL, window))["backfillJob"]
    assert created["errors"] == []
    assert [run["scheduledFor"] for run in created["executions"]] == [
        (end - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        for minutes in (5, 4, 3, 2, 1)
    ]
    assert {run["trigger"] for run in created["executions"]} == {"BACKFILL"}
    runs = await wait_for(client, job_id, lambda seen: len(with_status(seen, "SUCCEEDED")) >= 5)
    backfilled = [run for run in with_status(runs, "SUCCEEDED") if run["trigger"] == "BACKFILL"]
    assert len(backfilled) == 5
    assert_never_overlapping(backfilled)  # one after another, oldest first
    again = (await client.data(BACKFILL, window))["backfillJob"]
    assert again == {"executions": [], "errors": []}


async def test_backfill_limits(client: GraphQLClient) -> None:
    job_id = await create_job(client, schedules=[queries.cron("* * * * *")])
    now = datetime.now(UTC)
    too_many = {"id": job_id, "from": (now - timedelta(days=1)).isoformat(), "to": now.isoformat()}
    errors = (await client.data(BACKFILL, too_many))["backfillJob"]["errors"]
    assert errors[0]["field"] == ["from"]
    assert "1000" in errors[0]["message"]
    future = {"id": job_id, "from": now.isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    assert (await client.data(BACKFILL, future))["backfillJob"]["errors"][0]["field"] == ["to"]
    assert await executions(client, job_id) == []


async def test_the_global_limit_caps_concurrent_runs(database_url: str) -> None:
    settings = settings_for(database_url, max_concurrent_executions=2)
    async with running_client(settings) as client:
        sleep = {"handler": {"name": "sleep", "args": {"seconds": 0.4}}}
        job_id = await create_job(client, action=sleep, overlapPolicy="ALLOW")
        for _ in range(5):
            await client.data(TRIGGER, {"id": job_id})
        runs = await wait_for(client, job_id, lambda seen: len(with_status(seen, "SUCCEEDED")) == 5)
    intervals = list(zip(instants(runs, "startedAt"), instants(runs, "finishedAt"), strict=True))
    for start, _ in intervals:
        assert sum(1 for s, e in intervals if s <= start < e) <= 2


async def test_output_is_truncated_to_the_limit(database_url: str) -> None:
    async with running_client(settings_for(database_url, output_limit_bytes=50)) as client:
        echo = {"handler": {"name": "echo", "args": {"text": "x" * 500}}}
        job_id = await create_job(client, action=echo)
        await client.data(TRIGGER, {"id": job_id})
        (run,) = await wait_for(client, job_id, lambda seen: terminal(seen) and seen != [])
    assert run["output"].startswith('{"text": "xxx')
    assert "[truncated" in run["output"]
    assert len(run["output"].encode()) < 100


def assert_never_overlapping(runs: list[dict[str, Any]]) -> None:
    spans = sorted(zip(instants(runs, "startedAt"), instants(runs, "finishedAt"), strict=True))
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end


async def test_a_lost_lease_is_recovered(database_url: str) -> None:
    """An execution left RUNNING by a dead instance fails, and at-least-once runs it again."""
    async with running_client(settings_for(database_url, lease_seconds=0.6)) as client:
        at_least = await create_job(client, "at-least-once")
        at_most = await create_job(client, "at-most-once", delivery="AT_MOST_ONCE")
        for job_id in (at_least, at_most):
            await insert_lost_run(client.container.database, job_id, ago=timedelta(seconds=5))
        retried = await wait_for(
            client, at_least, lambda seen: with_status(seen, "SUCCEEDED") != [], within=10
        )
        lost, again = retried
        assert lost["status"] == "FAILED"
        assert "instance ghost lost" in lost["error"]
        assert (again["trigger"], again["attempt"], again["retryOf"]) == (
            "RETRY",
            2,
            {"id": lost["id"]},
        )
        (only,) = await wait_for(client, at_most, lambda seen: with_status(seen, "FAILED") != [])
        assert "instance ghost lost" in only["error"]


async def test_a_lost_run_does_not_block_skip_overlap(database_url: str) -> None:
    """Its lease expired: it no longer counts as running, even before it is recovered."""
    # Leases long enough that recovery does not happen during the test.
    async with running_client(settings_for(database_url, lease_seconds=60)) as client:
        job_id = await create_job(client, overlapPolicy="SKIP")
        await insert_lost_run(client.container.database, job_id, ago=timedelta(minutes=5))
        triggered = (await client.data(TRIGGER, {"id": job_id}))["triggerJob"]["execution"]
    assert triggered["status"] in ("RUNNING", "SUCCEEDED")


async def test_a_one_off_time_that_passed_while_down_is_recovered(database_url: str) -> None:
    settings = settings_for(database_url, misfire_grace_seconds=0.2)
    async with running_client(settings) as client:
        # Measured once the service is up: starting it may take a while on a busy machine,
        # and so may creating the job and stopping the engine (over 1 s seen in CI).
        at = datetime.now(UTC) + timedelta(seconds=3)
        job_id = await create_job(
            client, schedules=[{"once": {"at": at.isoformat()}}], paused=False
        )
        await client.container.engine.stop()  # the scheduler goes down before the time
        assert datetime.now(UTC) < at, "too slow to stop the scheduler before the run's time"
    await _until(at + timedelta(seconds=0.5))  # the time and its grace pass while it is down
    async with running_client(settings) as client:
        (run,) = await wait_for(client, job_id, lambda seen: terminal(seen) and seen != [])
        job = (await client.data(queries.JOB, {"id": job_id}))["job"]
    assert (run["trigger"], run["status"]) == ("CATCH_UP", "SUCCEEDED")  # RUN_ONCE default
    assert datetime.fromisoformat(run["scheduledFor"]) == at
    assert job["state"] == "COMPLETED"


async def test_jitter_delays_each_run_by_its_own_offset(client: GraphQLClient) -> None:
    from gql_scheduler.domain.schedules import jitter_offset

    job_id = await create_job(client, schedules=every(0.3), jitterSeconds=0.25)
    runs = await wait_for(client, job_id, lambda seen: len(with_status(seen, "SUCCEEDED")) >= 3)
    offsets = set()
    for run in with_status(runs, "SUCCEEDED"):
        scheduled = datetime.fromisoformat(run["scheduledFor"])
        offset = jitter_offset(job_id, scheduled, 0.25)
        offsets.add(offset)
        # Claimed (queued) no earlier than its jittered time; scheduledFor stays nominal.
        assert datetime.fromisoformat(run["queuedAt"]) >= scheduled + offset
    assert len(offsets) > 1  # each occurrence has its own delay


async def test_a_failed_claim_is_tried_again(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gql_scheduler.scheduling import claims

    caplog.set_level(logging.INFO, logger="gql_scheduler.store")
    real_claim = claims.claim_occurrences
    failures = []

    async def flaky_claim(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise OSError("database connection reset")
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(claims, "claim_occurrences", flaky_claim)
    at = datetime.now(UTC) + timedelta(seconds=1)
    job_id = await create_job(client, schedules=[{"once": {"at": at.isoformat()}}])
    (run,) = await wait_for(client, job_id, lambda seen: terminal(seen) and seen != [])
    assert (run["trigger"], run["status"]) == ("SCHEDULE", "SUCCEEDED")
    assert failures == [1]
    # Said once, as the database being unreachable, and once that it is back.
    actions = [getattr(r, "action", "") for r in caplog.records]
    assert actions.count("database_unreachable") == 1
    assert actions.count("database_reachable") == 1


async def test_every_state_change_of_a_run_writes_its_event(client: GraphQLClient) -> None:
    from tests.store_probe import execution_events

    ok = await create_job(client, "ok")
    fails = await create_job(
        client,
        "fails",
        action={"handler": {"name": "fail"}},
        retry={"maxAttempts": 2, "initialDelaySeconds": 0.05, "jitter": False},
    )
    for job_id in (ok, fails):
        await client.data(TRIGGER, {"id": job_id})
    (done,) = await wait_for(client, ok, lambda seen: terminal(seen) and seen != [])
    first, retry = await wait_for(client, fails, lambda seen: len(seen) == 2 and terminal(seen))
    database = client.container.database
    assert await execution_events(database, done["id"]) == ["QUEUED", "STARTED", "SUCCEEDED"]
    assert await execution_events(database, first["id"]) == ["QUEUED", "STARTED", "FAILED"]
    assert await execution_events(database, retry["id"]) == [
        "RETRY_SCHEDULED",
        "STARTED",
        "FAILED",
    ]
