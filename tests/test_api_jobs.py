"""Create, read, update, delete, pause and resume jobs through the real HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import queries
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.store_probe import job_events, table_counts

pytestmark = pytest.mark.asyncio


async def create(client: GraphQLClient, **fields: Any) -> dict[str, Any]:
    data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(**fields)})
    payload = data["createJob"]
    assert payload["errors"] == []
    job: dict[str, Any] = payload["job"]
    return job


async def test_create_job_reads_back_what_was_sent(client: GraphQLClient) -> None:
    job = await create(
        client,
        name="weekly-report",
        description="Mondays at nine, Berlin time",
        schedules=[queries.cron("0 9 * * 1", "Europe/Berlin")],
        tags=["reports", "finance", "reports"],
        retry={"maxAttempts": 3, "initialDelaySeconds": 2},
        timeoutSeconds=30,
        overlapPolicy="BUFFER_ONE",
        delivery="AT_MOST_ONCE",
        jitterSeconds=1.5,
    )
    assert job["name"] == "weekly-report"
    assert job["state"] == "ACTIVE"
    assert job["tags"] == ["finance", "reports"]
    assert job["schedules"] == [
        {
            "__typename": "CronSchedule",
            "expression": "0 9 * * 1",
            "timezone": "Europe/Berlin",
            "description": "At 09:00, only on Monday (Europe/Berlin)",
        }
    ]
    assert job["retry"] == {
        "maxAttempts": 3,
        "initialDelaySeconds": 2.0,
        "backoffFactor": 2.0,
        "maxDelaySeconds": 300.0,
        "jitter": True,
    }
    assert (job["overlapPolicy"], job["delivery"], job["jitterSeconds"]) == (
        "BUFFER_ONE",
        "AT_MOST_ONCE",
        1.5,
    )
    # No policy of its own: the server's default (RUN_ONCE) is what applies.
    assert job["misfirePolicy"] == "RUN_ONCE"
    # Mondays 09:00 in Berlin are 08:00Z in winter.
    next_run = datetime.fromisoformat(job["nextRunAt"])
    assert next_run.weekday() == 0
    assert job["nextRunAt"].endswith("T08:00:00Z")
    assert job["upcomingRuns"][0] == job["nextRunAt"]
    assert len(job["upcomingRuns"]) == 3
    assert job["lastExecution"] is None
    assert job["stats"]["total"] == 0

    by_id = (await client.data(queries.JOB, {"id": job["id"]}))["job"]
    by_name = (await client.data(queries.JOB, {"name": "weekly-report"}))["job"]
    assert by_id == by_name == job


async def test_every_action_kind_round_trips_with_secrets_masked(database_url: str) -> None:
    settings = settings_for(database_url, enable_shell=True, smtp_url="smtp://127.0.0.1:2525")
    async with running_client(settings) as client:
        http = await create(
            client,
            name="http",
            action={
                "http": {
                    "url": "https://bot:hunter2@example.test/hook?api_key=k3y&page=2",
                    "method": "PUT",
                    "headers": [
                        {"name": "Authorization", "value": "Bearer s3cret"},
                        {"name": "X-Api-Key", "value": "k3y"},
                        {"name": "Accept", "value": "application/json"},
                    ],
                    "json": {"n": 1},
                    "successStatuses": [200, 202],
                }
            },
        )
        shell = await create(
            client,
            name="shell",
            action={"shell": {"command": ["echo", "hi"], "env": {"A": "1"}}},
        )
        email = await create(
            client,
            name="email",
            action={"email": {"to": ["ops@example.com"], "subject": "Hi", "body": "Hello"}},
        )
    assert http["action"] == {
        "__typename": "HttpAction",
        "url": "https://***@example.test/hook?api_key=***&page=2",
        "method": "PUT",
        "headers": [
            {"name": "Authorization", "value": "***"},
            {"name": "X-Api-Key", "value": "***"},
            {"name": "Accept", "value": "application/json"},
        ],
        "body": None,
        "json": {"n": 1},
        "successStatuses": [200, 202],
    }
    assert shell["action"] == {
        "__typename": "ShellAction",
        "command": ["echo", "hi"],
        "env": {"A": "***"},  # env values are write-only unless marked public
        "workingDirectory": None,
    }
    assert email["action"]["to"] == ["ops@example.com"]
    assert email["action"]["html"] is False


async def test_interval_and_once_schedules(client: GraphQLClient) -> None:
    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    job = await create(
        client,
        schedules=[
            {"interval": {"everySeconds": 3600, "anchor": anchor.isoformat()}},
            {"once": {"at": at.isoformat()}},
        ],
    )
    assert job["schedules"] == [
        {
            "__typename": "IntervalSchedule",
            "everySeconds": 3600.0,
            "anchor": "2026-01-01T00:00:00Z",
        },
        {"__typename": "OnceSchedule", "at": at.isoformat().replace("+00:00", "Z")},
    ]
    runs = [datetime.fromisoformat(run) for run in job["upcomingRuns"]]
    assert all(run.minute == 0 and run.second == 0 for run in runs)
    assert runs == sorted(runs)


async def test_interval_without_anchor_is_anchored_at_creation(client: GraphQLClient) -> None:
    before = datetime.now(UTC)
    job = await create(client, schedules=[{"interval": {"everySeconds": 0.5}}])
    anchor = datetime.fromisoformat(job["schedules"][0]["anchor"])
    assert before <= anchor <= datetime.now(UTC)
    first, second, _ = (datetime.fromisoformat(run) for run in job["upcomingRuns"])
    assert second - first == timedelta(seconds=0.5)


async def test_job_by_id_and_name_must_both_match(client: GraphQLClient) -> None:
    job = await create(client, name="a")
    await create(client, name="b")
    assert (await client.data(queries.JOB, {"id": job["id"], "name": "b"}))["job"] is None
    assert (await client.data(queries.JOB, {"id": "no-such-id"}))["job"] is None
    body = await client.execute(queries.JOB, {})
    assert body["data"]["job"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "id or its name" in error["message"]


async def test_update_replaces_only_what_is_given(client: GraphQLClient) -> None:
    job = await create(client, description="old", tags=["a"], timeoutSeconds=10)
    data = await client.data(
        queries.UPDATE_JOB,
        {
            "id": job["id"],
            "input": {
                "name": "renamed",
                "description": None,
                "schedules": [queries.cron("*/15 * * * *")],
                "tags": ["b", "c"],
            },
        },
    )
    payload = data["updateJob"]
    assert payload["errors"] == []
    updated = payload["job"]
    assert updated["name"] == "renamed"
    assert updated["description"] is None  # an explicit null clears
    assert updated["tags"] == ["b", "c"]
    assert updated["timeoutSeconds"] == 10  # left out: kept
    assert updated["action"] == job["action"]
    assert updated["createdAt"] == job["createdAt"]
    assert updated["updatedAt"] >= job["updatedAt"]
    run = datetime.fromisoformat(updated["nextRunAt"])
    assert (run.minute % 15, run.second) == (0, 0)
    assert (await client.data(queries.JOB, {"name": "renamed"}))["job"]["id"] == job["id"]


async def test_update_refuses_null_for_required_fields_and_changes_nothing(
    client: GraphQLClient,
) -> None:
    job = await create(client)
    before = await table_counts(client.container.database)
    data = await client.data(
        queries.UPDATE_JOB, {"id": job["id"], "input": {"name": None, "schedules": None}}
    )
    assert data["updateJob"]["job"] is None
    assert sorted(
        (tuple(error["field"]), error["code"]) for error in data["updateJob"]["errors"]
    ) == [(("input", "name"), "INVALID"), (("input", "schedules"), "INVALID")]
    assert await table_counts(client.container.database) == before
    assert (await client.data(queries.JOB, {"id": job["id"]}))["job"] == job


async def test_rename_to_a_taken_name_is_refused(client: GraphQLClient) -> None:
    await create(client, name="first")
    second = await create(client, name="second")
    data = await client.data(queries.UPDATE_JOB, {"id": second["id"], "input": {"name": "first"}})
    assert data["updateJob"]["errors"] == [
        {
            "field": ["input", "name"],
            "message": "a job named 'first' already exists",
            "code": "NAME_TAKEN",
        }
    ]


async def test_delete_job(client: GraphQLClient) -> None:
    job = await create(client)
    data = await client.data(queries.DELETE_JOB, {"id": job["id"]})
    assert data["deleteJob"] == {"deletedJobId": job["id"], "errors": []}
    assert (await client.data(queries.JOB, {"id": job["id"]}))["job"] is None
    again = await client.data(queries.DELETE_JOB, {"id": job["id"]})
    assert again["deleteJob"]["deletedJobId"] is None
    assert again["deleteJob"]["errors"][0]["code"] == "NOT_FOUND"
    assert (await table_counts(client.container.database))["job_tags"] == 0


async def test_pause_and_resume(client: GraphQLClient) -> None:
    job = await create(client, tags=["x"])
    paused = (await client.data(queries.PAUSE_JOB, {"id": job["id"], "note": "maintenance"}))[
        "pauseJob"
    ]["job"]
    assert paused["state"] == "PAUSED"
    assert paused["pauseNote"] == "maintenance"
    assert paused["nextRunAt"] is None
    assert paused["upcomingRuns"] == []

    resumed = (await client.data(queries.RESUME_JOB, {"id": job["id"]}))["resumeJob"]["job"]
    assert resumed["state"] == "ACTIVE"
    assert resumed["pauseNote"] is None
    assert resumed["nextRunAt"] == job["nextRunAt"]


async def test_create_paused(client: GraphQLClient) -> None:
    job = await create(client, paused=True)
    assert job["state"] == "PAUSED"
    assert job["nextRunAt"] is None


async def test_pause_twice_is_one_event_and_resume_of_active_is_a_no_op(
    client: GraphQLClient,
) -> None:
    job = await create(client)
    for _ in range(2):
        await client.data(queries.PAUSE_JOB, {"id": job["id"], "note": "n"})
    for _ in range(2):
        await client.data(queries.RESUME_JOB, {"id": job["id"]})
    types = [kind for _, kind, _ in await job_events(client.container.database)]
    assert types == ["CREATED", "PAUSED", "RESUMED"]


async def test_unknown_id_is_not_found_for_every_mutation(client: GraphQLClient) -> None:
    variables = {"id": "00000000-0000-0000-0000-000000000000"}
    for document, root in (
        (queries.PAUSE_JOB, "pauseJob"),
        (queries.RESUME_JOB, "resumeJob"),
        (queries.DELETE_JOB, "deleteJob"),
    ):
        errors = (await client.data(document, variables))[root]["errors"]
        assert errors == [
            {"field": ["id"], "message": f"no job with id {variables['id']!r}", "code": "NOT_FOUND"}
        ]
    update = await client.data(queries.UPDATE_JOB, {**variables, "input": {"name": "x"}})
    assert update["updateJob"]["errors"][0]["code"] == "NOT_FOUND"


async def test_each_change_writes_its_event_in_order(client: GraphQLClient) -> None:
    job = await create(client)
    await client.data(queries.UPDATE_JOB, {"id": job["id"], "input": {"description": "d"}})
    await client.data(queries.PAUSE_JOB, {"id": job["id"]})
    await client.data(queries.RESUME_JOB, {"id": job["id"]})
    await client.data(queries.DELETE_JOB, {"id": job["id"]})
    events = await job_events(client.container.database)
    assert [kind for _, kind, _ in events] == [
        "CREATED",
        "UPDATED",
        "PAUSED",
        "RESUMED",
        "DELETED",
    ]
    assert {job_id for _, _, job_id in events} == {job["id"]}
    ids = [event_id for event_id, _, _ in events]
    assert ids == sorted(set(ids))
