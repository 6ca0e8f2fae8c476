"""Oversized stored inputs are refused as UserErrors (field path, TOO_LARGE), storing nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests import queries
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.store_probe import table_counts

FIELD = 64  # characters of a one-line field
PAYLOAD = 256  # bytes of a large field
LONG = "x" * (FIELD + 1)
BIG = "é" * (PAYLOAD // 2 + 1)  # few characters, over the limit in UTF-8 bytes
URL = "https://example.com/hook"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[GraphQLClient]:
    settings = settings_for(database_url, max_field_length=FIELD, max_payload_bytes=PAYLOAD)
    async with running_client(settings) as graphql_client:
        yield graphql_client


def http(**fields: Any) -> dict[str, Any]:
    return {"http": {"url": URL, **fields}}


OVERSIZED: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    (
        "cron expression",
        {"schedules": [queries.cron("0 " * 40 + "* * *")]},
        ("schedules", "0", "cron", "expression"),
    ),
    (
        "timezone",
        {"schedules": [queries.cron("0 9 * * *", LONG)]},
        ("schedules", "0", "cron", "timezone"),
    ),
    ("url", {"action": {"http": {"url": URL + "/" + LONG}}}, ("action", "http", "url")),
    (
        "header value",
        {"action": http(headers=[{"name": "X-A", "value": LONG}])},
        ("action", "http", "headers", "0", "value"),
    ),
    (
        "header count",
        {"action": http(headers=[{"name": "X-A", "value": "1"}] * 101)},
        ("action", "http", "headers"),
    ),
    ("http body", {"action": http(body=BIG)}, ("action", "http", "body")),
    ("http json", {"action": http(json={"text": BIG})}, ("action", "http", "json")),
    (
        "handler args",
        {"action": {"handler": {"name": "echo", "args": {"text": BIG}}}},
        ("action", "handler", "args"),
    ),
    (
        "shell command and env",
        {"action": {"shell": {"command": ["echo"], "env": {"A": BIG}}}},
        ("action", "shell", "command"),
    ),
    (
        "email subject",
        {"action": {"email": {"to": ["a@example.com"], "subject": LONG, "body": "b"}}},
        ("action", "email", "subject"),
    ),
    (
        "email body",
        {"action": {"email": {"to": ["a@example.com"], "subject": "s", "body": BIG}}},
        ("action", "email", "body"),
    ),
    (
        "email recipients",
        {"action": {"email": {"to": ["a@example.com"] * 101, "subject": "s", "body": "b"}}},
        ("action", "email", "to"),
    ),
]


@pytest.mark.parametrize(
    ("fields", "path"),
    [pytest.param(fields, path, id=case) for case, fields, path in OVERSIZED],
)
async def test_an_oversized_input_is_refused_and_nothing_is_stored(
    client: GraphQLClient, fields: dict[str, Any], path: tuple[str, ...]
) -> None:
    before = await table_counts(client.container.database)
    data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(**fields)})
    payload = data["createJob"]
    assert payload["job"] is None
    # Sizes are checked alone and first: no other problem (shell or e-mail disabled) shows.
    assert [(error["field"], error["code"]) for error in payload["errors"]] == [
        (["input", *path], "TOO_LARGE")
    ]
    assert await table_counts(client.container.database) == before


async def test_an_oversized_cron_is_not_previewed(client: GraphQLClient) -> None:
    schedules = [queries.cron("0 " * 40 + "* * *")]
    data = await client.data(queries.PREVIEW, {"schedules": schedules})
    errors = data["previewSchedule"]["errors"]
    assert [(error["field"], error["code"]) for error in errors] == [
        (["schedules", "0", "cron", "expression"], "TOO_LARGE")
    ]


async def test_an_oversized_update_changes_nothing(client: GraphQLClient) -> None:
    created = await client.data(queries.CREATE_JOB, {"input": queries.job_input()})
    job_id = created["createJob"]["job"]["id"]
    update = {"description": "d", "action": http(body=BIG)}
    data = await client.data(queries.UPDATE_JOB, {"id": job_id, "input": update})
    assert [e["code"] for e in data["updateJob"]["errors"]] == ["TOO_LARGE"]
    job = (await client.data(queries.JOB, {"id": job_id}))["job"]
    assert job["description"] is None
    assert job["action"]["__typename"] == "HandlerAction"


async def test_an_oversized_pause_note_is_refused(client: GraphQLClient) -> None:
    created = await client.data(queries.CREATE_JOB, {"input": queries.job_input()})
    job_id = created["createJob"]["job"]["id"]
    data = await client.data(queries.PAUSE_JOB, {"id": job_id, "note": LONG})
    assert [(e["field"], e["code"]) for e in data["pauseJob"]["errors"]] == [
        (["note"], "TOO_LARGE")
    ]
    assert (await client.data(queries.JOB, {"id": job_id}))["job"]["state"] == "ACTIVE"
