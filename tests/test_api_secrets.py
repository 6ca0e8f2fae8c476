"""Write-only secrets through the API: sent for real, never read back, kept by updates."""

from __future__ import annotations

import json
from typing import Any

from tests import queries
from tests.engine_helpers import TRIGGER, terminal, wait_for
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.local_servers import http_server

ACTION_FIELDS = """
  __typename
  ... on HttpAction { url headers { name value secret } body json bodySecret }
  ... on ShellAction { env envVars { name value secret } }
"""
CREATE = f"""
mutation($input: CreateJobInput!) {{
  createJob(input: $input) {{ job {{ id action {{ {ACTION_FIELDS} }} }} {queries.ERRORS} }}
}}
"""
UPDATE = f"""
mutation($id: ID!, $input: UpdateJobInput!) {{
  updateJob(id: $id, input: $input) {{ job {{ id action {{ {ACTION_FIELDS} }} }} {queries.ERRORS} }}
}}
"""
READ = f"query($id: ID!) {{ job(id: $id) {{ action {{ {ACTION_FIELDS} }} }} }}"

SIGNATURE = "sig-value-7f3a9c"
BODY = '{"password": "body-secret-5521"}'


def http_input(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "http": {
            "url": url,
            "headers": [
                {"name": "X-Custom", "value": SIGNATURE, "secret": True},
                {"name": "Accept", "value": "text/plain"},
            ],
            "body": BODY,
            "bodySecret": True,
            **fields,
        }
    }


async def create(client: GraphQLClient, action: dict[str, Any]) -> dict[str, Any]:
    payload = (await client.data(CREATE, {"input": queries.job_input("j", action=action)}))[
        "createJob"
    ]
    assert payload["errors"] == [], payload["errors"]
    job: dict[str, Any] = payload["job"]
    return job


async def update(client: GraphQLClient, job_id: str, action: dict[str, Any]) -> dict[str, Any]:
    data = await client.data(UPDATE, {"id": job_id, "input": {"action": action}})
    payload: dict[str, Any] = data["updateJob"]
    return payload


async def run_once(client: GraphQLClient, job_id: str) -> dict[str, Any]:
    await client.data(TRIGGER, {"id": job_id, "force": True})
    runs = await wait_for(client, job_id, lambda seen: seen != [] and terminal(seen))
    return runs[-1]


async def test_secret_header_and_body_are_sent_but_never_read_back(client: GraphQLClient) -> None:
    async with http_server() as server:
        job = await create(client, http_input(server.url("/ok")))
        read = (await client.data(READ, {"id": job["id"]}))["job"]["action"]
        assert read == job["action"]
        assert read["headers"] == [
            {"name": "X-Custom", "value": "***", "secret": True},
            {"name": "Accept", "value": "text/plain", "secret": False},
        ]
        assert (read["body"], read["json"], read["bodySecret"]) == ("***", None, True)
        assert (await run_once(client, job["id"]))["status"] == "SUCCEEDED"
    (request,) = server.recorder.requests
    assert request.header_values("X-Custom") == [SIGNATURE]
    assert request.body == BODY.encode()


async def test_an_update_that_leaves_secrets_out_keeps_them(client: GraphQLClient) -> None:
    async with http_server() as server:
        job = await create(client, http_input(server.url("/ok")))
        # What a client read back, sent again with one change: the masks keep the secrets.
        read = job["action"]
        again = {
            "http": {
                "url": server.url("/status/201"),
                "headers": [
                    {"name": h["name"], "value": h["value"], "secret": h["secret"]}
                    for h in read["headers"]
                ],
                "body": read["body"],
                "bodySecret": True,
            }
        }
        payload = await update(client, job["id"], again)
        assert payload["errors"] == []
        # Left out altogether (no value, no body) keeps them too.
        left_out = {
            "http": {
                "url": server.url("/status/202"),
                "headers": [{"name": "x-custom", "secret": True}],
                "bodySecret": True,
            }
        }
        assert (await update(client, job["id"], left_out))["errors"] == []
        await run_once(client, job["id"])
    (request,) = server.recorder.requests
    assert request.path == "/status/202"
    assert request.header_values("X-Custom") == [SIGNATURE]
    assert request.body == BODY.encode()


async def test_a_new_secret_without_its_value_is_refused(client: GraphQLClient) -> None:
    url = "http://127.0.0.1:9/x"
    no_value = http_input(url, headers=[{"name": "X-New", "secret": True}])
    data = await client.data(CREATE, {"input": queries.job_input("j", action=no_value)})
    assert data["createJob"]["job"] is None
    assert data["createJob"]["errors"] == [
        {
            "field": ["input", "action", "http", "headers", "0", "value"],
            "message": "a new secret needs its value (only a stored secret may be kept by "
            "leaving it out)",
            "code": "INVALID",
        }
    ]
    job = await create(client, http_input(url))
    plain_without_value = http_input(url, headers=[{"name": "Accept"}])
    no_body = {"http": {"url": url, "bodySecret": True}}
    for action, field, message in [
        (
            plain_without_value,
            ["input", "action", "http", "headers", "0", "value"],
            "give a value (only a secret's may be left out)",
        ),
        (
            {"shell": {"command": ["true"], "envVars": [{"name": "TOKEN"}]}},
            ["input", "action", "shell", "env", "TOKEN"],
            "a new secret needs its value (only a stored secret may be kept by leaving it out)",
        ),
    ]:
        payload = await update(client, job["id"], action)
        assert [(e["field"], e["message"]) for e in payload["errors"]] == [(field, message)]
    # A secret body can be kept only from a stored secret body.
    await update(client, job["id"], {"http": {"url": url}})
    payload = await update(client, job["id"], no_body)
    assert [e["field"] for e in payload["errors"]] == [["input", "action", "http", "body"]]
    # Nothing changed by the refused updates.
    read = (await client.data(READ, {"id": job["id"]}))["job"]["action"]
    assert (read["headers"], read["body"]) == ([], None)


async def test_env_is_write_only_unless_marked_public(database_url: str) -> None:
    async with running_client(settings_for(database_url, enable_shell=True)) as client:
        shell = {
            "command": ["/bin/sh", "-c", 'printf "%s|%s" "$TOKEN" "$REGION"'],
            "envVars": [
                {"name": "TOKEN", "value": "env-secret-1234"},
                {"name": "REGION", "value": "eu-west", "secret": False},
            ],
        }
        job = await create(client, {"shell": shell})
        assert job["action"]["envVars"] == [
            {"name": "TOKEN", "value": "***", "secret": True},
            {"name": "REGION", "value": "eu-west", "secret": False},
        ]
        assert job["action"]["env"] == {"TOKEN": "***", "REGION": "eu-west"}
        # The plain env object is all secret; a mask sent back keeps the stored value.
        legacy = {"command": shell["command"], "env": {"TOKEN": "***", "REGION": "us-east"}}
        payload = await update(client, job["id"], {"shell": legacy})
        assert payload["errors"] == []
        assert payload["job"]["action"]["env"] == {"TOKEN": "***", "REGION": "***"}
        run = await run_once(client, job["id"])
    # What the process printed is the job's own output, not ours: it proves the real values.
    assert (run["status"], run["output"]) == ("SUCCEEDED", "env-secret-1234|us-east")


async def test_json_body_keys_that_look_secret_read_back_masked(client: GraphQLClient) -> None:
    body = {"user": "u", "auth": {"password": "p4ssw0rd!"}, "items": [{"api_key": "k-123456"}]}
    job = await create(client, {"http": {"url": "http://127.0.0.1:9/x", "json": body}})
    assert job["action"]["json"] == {"user": "u", "auth": "***", "items": [{"api_key": "***"}]}
    shown = json.dumps(job)
    assert "p4ssw0rd" not in shown
    assert "k-123456" not in shown
