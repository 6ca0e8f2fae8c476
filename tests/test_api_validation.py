"""Every bad input gets a UserError with a field path and a code, and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import queries
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.store_probe import table_counts

pytestmark = pytest.mark.asyncio

PAST = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
FUTURE = (datetime.now(UTC) + timedelta(days=30)).isoformat()
HANDLER = {"handler": {"name": "noop"}}

# (case, input fields replacing the valid defaults, expected (field path, code) pairs)
INVALID_CREATES: list[tuple[str, dict[str, Any], list[tuple[str, ...]]]] = [
    (
        "unparsable cron",
        {"schedules": [queries.cron("every monday")]},
        [("input", "schedules", "0", "cron", "expression", "INVALID")],
    ),
    (
        "out-of-range cron",
        {"schedules": [queries.cron("0 24 * * *")]},
        [("input", "schedules", "0", "cron", "expression", "INVALID")],
    ),
    (
        "seconds out of range in a 6-field cron",
        {"schedules": [queries.cron("60 0 9 * * *")]},
        [("input", "schedules", "0", "cron", "expression", "INVALID")],
    ),
    (
        "cron that never fires",
        {"schedules": [queries.cron("0 0 30 2 *")]},
        [("input", "schedules", "0", "cron", "expression", "INVALID")],
    ),
    (
        "unknown timezone",
        {"schedules": [queries.cron("0 9 * * *", "Mars/Olympus_Mons")]},
        [("input", "schedules", "0", "cron", "timezone", "INVALID")],
    ),
    ("no schedules", {"schedules": []}, [("input", "schedules", "INVALID")]),
    (
        "interval of zero",
        {"schedules": [{"interval": {"everySeconds": 0}}]},
        [("input", "schedules", "0", "interval", "everySeconds", "INVALID")],
    ),
    (
        "negative interval, second schedule",
        {"schedules": [queries.cron("0 9 * * *"), {"interval": {"everySeconds": -5}}]},
        [("input", "schedules", "1", "interval", "everySeconds", "INVALID")],
    ),
    (
        "one-off time in the past",
        {"schedules": [{"once": {"at": PAST}}]},
        [("input", "schedules", "0", "once", "at", "INVALID")],
    ),
    (
        "endAt before startAt",
        {"startAt": FUTURE, "endAt": PAST},
        [("input", "endAt", "INVALID")],
    ),
    ("empty name", {"name": "  "}, [("input", "name", "INVALID")]),
    (
        "url that is not http(s)",
        {"action": {"http": {"url": "ftp://files.example.com/x"}}},
        [("input", "action", "http", "url", "INVALID")],
    ),
    (
        "shell while shell is disabled",
        {"action": {"shell": {"command": ["echo", "hi"]}}},
        [("input", "action", "shell", "DISABLED")],
    ),
    (
        "unknown handler",
        {"action": {"handler": {"name": "launch_rockets"}}},
        [("input", "action", "handler", "name", "INVALID")],
    ),
    (
        "email while no SMTP server is configured",
        {"action": {"email": {"to": ["ops@example.com"], "subject": "s", "body": "b"}}},
        [("input", "action", "email", "DISABLED")],
    ),
    (
        "bad retry policy",
        {"retry": {"maxAttempts": 0}},
        [("input", "retry", "maxAttempts", "INVALID")],
    ),
    (
        "retry delays out of order",
        {"retry": {"initialDelaySeconds": 10, "maxDelaySeconds": 5}},
        [("input", "retry", "maxDelaySeconds", "INVALID")],
    ),
    (
        "HTTP success status out of range",
        {"action": {"http": {"url": "https://example.com", "successStatuses": [200, 99]}}},
        [("input", "action", "http", "successStatuses", "1", "INVALID")],
    ),
    (
        "handler args keep the client's own keys",
        {"action": {"handler": {"name": "sleep", "args": {"seconds": 1, "wake_up": 2}}}},
        [("input", "action", "handler", "args", "wake_up", "INVALID")],
    ),
    (
        "zero catch-up window",
        {"catchUpWindowSeconds": 0},
        [("input", "catchUpWindowSeconds", "INVALID")],
    ),
    ("negative jitter", {"jitterSeconds": -1}, [("input", "jitterSeconds", "INVALID")]),
    ("zero timeout", {"timeoutSeconds": 0}, [("input", "timeoutSeconds", "INVALID")]),
    (
        "several problems at once",
        {"schedules": [queries.cron("* * *")], "action": {"handler": {"name": "nope"}}},
        [
            ("input", "schedules", "0", "cron", "expression", "INVALID"),
            ("input", "action", "handler", "name", "INVALID"),
        ],
    ),
]


def error_keys(errors: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return sorted((*error["field"], error["code"]) for error in errors)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [pytest.param(fields, expected, id=case) for case, fields, expected in INVALID_CREATES],
)
async def test_invalid_create_is_refused_and_changes_nothing(
    client: GraphQLClient, fields: dict[str, Any], expected: list[tuple[str, ...]]
) -> None:
    before = await table_counts(client.container.database)
    data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(**fields)})
    payload = data["createJob"]
    assert payload["job"] is None
    assert error_keys(payload["errors"]) == sorted(expected)
    for error in payload["errors"]:
        assert error["message"]
        assert "Traceback" not in error["message"]
    assert await table_counts(client.container.database) == before


async def test_messages_say_what_is_wrong(client: GraphQLClient) -> None:
    data = await client.data(
        queries.CREATE_JOB,
        {"input": queries.job_input(schedules=[queries.cron("0 24 * * *")])},
    )
    (error,) = data["createJob"]["errors"]
    assert error["message"] == "hour field: 24 is out of range 0-23"


async def test_duplicate_name_is_name_taken(client: GraphQLClient) -> None:
    await client.data(queries.CREATE_JOB, {"input": queries.job_input(name="dup")})
    before = await table_counts(client.container.database)
    data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(name="dup")})
    assert data["createJob"]["errors"] == [
        {
            "field": ["input", "name"],
            "message": "a job named 'dup' already exists",
            "code": "NAME_TAKEN",
        }
    ]
    assert await table_counts(client.container.database) == before


async def test_malformed_email_address_when_email_is_enabled(database_url: str) -> None:
    settings = settings_for(database_url, smtp_url="smtp://127.0.0.1:2525")
    async with running_client(settings) as client:
        action = {"email": {"to": ["ok@example.com", "not-an-email"], "subject": "s", "body": "b"}}
        data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(action=action)})
    assert error_keys(data["createJob"]["errors"]) == [
        ("input", "action", "email", "to", "1", "INVALID")
    ]


async def test_shell_is_accepted_once_enabled(database_url: str) -> None:
    async with running_client(settings_for(database_url, enable_shell=True)) as client:
        action = {"shell": {"command": ["echo", "hi"]}}
        data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(action=action)})
    assert data["createJob"]["errors"] == []


async def test_naive_datetime_is_refused_with_a_clear_message(client: GraphQLClient) -> None:
    fields = {"schedules": [{"once": {"at": "2030-01-01T09:00:00"}}]}
    body = await client.execute(queries.CREATE_JOB, {"input": queries.job_input(**fields)})
    (error,) = body["errors"]
    assert "needs an offset or Z" in error["message"]
    assert (await table_counts(client.container.database))["jobs"] == 0


async def test_failed_update_changes_nothing(client: GraphQLClient) -> None:
    created = await client.data(queries.CREATE_JOB, {"input": queries.job_input()})
    job = created["createJob"]["job"]
    before = await table_counts(client.container.database)
    data = await client.data(
        queries.UPDATE_JOB,
        {
            "id": job["id"],
            "input": {"description": "new", "schedules": [queries.cron("0 0 31 4 *")]},
        },
    )
    assert error_keys(data["updateJob"]["errors"]) == [
        ("input", "schedules", "0", "cron", "expression", "INVALID")
    ]
    assert await table_counts(client.container.database) == before
    assert (await client.data(queries.JOB, {"id": job["id"]}))["job"] == job


async def test_a_schedule_with_no_run_before_end_at_is_refused(client: GraphQLClient) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=1)
    fields = {
        "schedules": [queries.cron("0 0 1 1 *")],
        "endAt": (soon + timedelta(minutes=1)).isoformat(),
    }
    data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(**fields)})
    assert error_keys(data["createJob"]["errors"]) == [("input", "endAt", "INVALID")]


async def test_internal_errors_are_masked(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> None:
        raise RuntimeError("connection string postgres://secret@db")

    monkeypatch.setattr(client.container.jobs, "health", broken)
    body = await client.execute("{ health { status } }")
    (error,) = body["errors"]
    assert error["message"] == "Internal server error."
    assert "secret" not in str(body)
    assert "Traceback" not in str(body)
