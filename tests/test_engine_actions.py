"""Actions run by the engine against real servers and processes; history statistics."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gql_scheduler.domain.executions import ExecutionStatus
from gql_scheduler.store.tables import execution_output
from tests.engine_helpers import TRIGGER, create_job, terminal, wait_for
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.local_servers import http_server, smtp_server
from tests.store_probe import insert_execution

pytestmark = pytest.mark.asyncio


async def test_http_retries_carry_the_same_idempotency_key(client: GraphQLClient) -> None:
    async with http_server() as server:
        job_id = await create_job(
            client,
            action={"http": {"url": server.url("/status/503"), "json": {"n": 1}}},
            retry={"maxAttempts": 3, "initialDelaySeconds": 0.05, "jitter": False},
            # The two occurrences' attempts may overlap; SKIP would skip a retry.
            overlapPolicy="ALLOW",
        )
        await client.data(TRIGGER, {"id": job_id})
        await client.data(TRIGGER, {"id": job_id, "force": True})
        runs = await wait_for(client, job_id, lambda seen: len(seen) == 6 and terminal(seen))
        keys = [request.header_values("idempotency-key") for request in server.recorder.requests]
    assert all(run["status"] == "FAILED" for run in runs)
    assert {run["resultCode"] for run in runs} == {503}
    assert runs[0]["error"] == "HTTP 503 Service Unavailable"
    assert all(len(values) == 1 for values in keys)
    # Two occurrences (the two triggers), three attempts each, one key per occurrence.
    flat = [values[0] for values in keys]
    assert len(flat) == 6
    assert len(set(flat)) == 2
    assert sorted(flat.count(key) for key in set(flat)) == [3, 3]


async def test_http_success_records_the_status_and_body(client: GraphQLClient) -> None:
    async with http_server() as server:
        job_id = await create_job(
            client, action={"http": {"url": server.url("/ok"), "method": "GET"}}
        )
        await client.data(TRIGGER, {"id": job_id})
        (run,) = await wait_for(client, job_id, lambda seen: terminal(seen) and seen != [])
    assert (run["status"], run["resultCode"], run["output"]) == ("SUCCEEDED", 200, "ok")


async def test_shell_output_is_kept_in_chunks(database_url: str) -> None:
    program = "import sys; print('out-1'); print('err-1', file=sys.stderr); sys.exit(3)"
    async with running_client(settings_for(database_url, enable_shell=True)) as client:
        job_id = await create_job(
            client, action={"shell": {"command": [sys.executable, "-c", program]}}
        )
        await client.data(TRIGGER, {"id": job_id})
        (run,) = await wait_for(client, job_id, lambda seen: terminal(seen) and seen != [])
        async with client.container.database.read() as connection:
            rows = (
                await connection.execute(
                    sa.select(execution_output.c.stream, execution_output.c.text)
                    .where(execution_output.c.execution_id == int(run["id"]))
                    .order_by(execution_output.c.seq)
                )
            ).all()
    assert (run["status"], run["resultCode"], run["error"]) == ("FAILED", 3, "exit code 3")
    assert sorted((stream, text.strip()) for stream, text in rows) == [
        ("STDERR", "err-1"),
        ("STDOUT", "out-1"),
    ]
    assert "out-1" in run["output"]
    assert "err-1" in run["output"]


async def test_email_is_sent_through_smtp(database_url: str) -> None:
    async with smtp_server() as smtp:
        async with running_client(settings_for(database_url, smtp_url=smtp.url)) as client:
            action = {"email": {"to": ["ops@example.com"], "subject": "Nightly", "body": "done"}}
            job_id = await create_job(client, action=action)
            await client.data(TRIGGER, {"id": job_id})
            (run,) = await wait_for(client, job_id, lambda seen: terminal(seen) and seen != [])
        messages = smtp.recorder.messages
    assert run["status"] == "SUCCEEDED", run
    assert len(messages) == 1
    assert messages[0].message["Subject"] == "Nightly"


async def test_stats_are_computed_over_the_history(client: GraphQLClient) -> None:
    job_id = await create_job(client)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    # Durations 100, 200, ..., 2000 ms; drifts 10, 20, ..., 200 ms; every 4th one failed.
    for index in range(1, 21):
        scheduled = base + timedelta(minutes=index)
        started = scheduled + timedelta(milliseconds=10 * index)
        status = ExecutionStatus.FAILED if index % 4 == 0 else ExecutionStatus.SUCCEEDED
        await insert_execution(
            client.container.database,
            job_id,
            scheduled,
            status=status,
            started_at=started,
            finished_at=started + timedelta(milliseconds=100 * index),
        )
    await insert_execution(client.container.database, job_id, base, status=ExecutionStatus.MISSED)
    query = """query($id: ID, $since: DateTime) { job(id: $id) { stats(since: $since) {
      total succeeded failed successRate avgDurationMs p95DurationMs avgDriftMs p95DriftMs
      lastSuccessAt lastFailureAt } } }"""
    stats = (await client.data(query, {"id": job_id}))["job"]["stats"]
    assert (stats["total"], stats["succeeded"], stats["failed"]) == (21, 15, 5)
    assert stats["successRate"] == pytest.approx(0.75)
    assert stats["avgDurationMs"] == pytest.approx(1050, abs=0.5)
    assert stats["p95DurationMs"] == pytest.approx(1900, abs=0.5)  # nearest rank: 19th of 20
    assert stats["avgDriftMs"] == pytest.approx(105, abs=0.5)
    assert stats["p95DriftMs"] == pytest.approx(190, abs=0.5)
    assert stats["lastSuccessAt"].startswith("2026-01-01T00:19:")
    assert stats["lastFailureAt"].startswith("2026-01-01T00:20:")
    since = (base + timedelta(minutes=11)).isoformat()
    recent = (await client.data(query, {"id": job_id, "since": since}))["job"]["stats"]
    assert recent["total"] == 10
