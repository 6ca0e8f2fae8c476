"""End to end: a real `gql-scheduler serve` runs jobs full of secrets, and no log line, API
response or execution error of ours carries one of them.

The server is a subprocess on PostgreSQL (trust auth, so the database URL can carry a
password that is really used), at DEBUG and at INFO, in JSON and text. Its jobs call a real
HTTP server on 127.0.0.1 (which records what it received, to prove the secrets were sent
for real), run a process with secret env, and mail through an SMTP URL with a password.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests import queries
from tests.local_servers import RunningHttpServer, closed_port, http_server
from tests.processes import (
    LOCALHOST,
    RunningProcess,
    clean_environment,
    free_port,
    running,
    wait_until_answers,
)

T = TypeVar("T")

URL_USER = "urluser-tok-1a2b3c"
URL_PASSWORD = "urlpass-4d5e6f"
QUERY_SIG = "qsig-7a8b9c0d"
QUERY_PWD = "qpwd-1f2e3d4c"
MARKED_HEADER = "marked-hdr-5b6c7d"  # under an innocent name, marked secret
SIGNATURE = "sha256=hubsig-8e9f0a1b"  # X-Hub-Signature-256, not marked: the name gives it away
VAULT_PASS = "vault-pass-2c3d4e"
API_KEY = "gqls_apikey9x8y7z6w"
BODY_PASSWORD = "body-pwd-3e4f5a6b"
ENV_SECRET = "env-secret-9c8d7e6f"
SMTP_PASSWORD = "smtp-pass-0a9b8c7d"
DB_PASSWORD = "db-pass-6f5e4d3c"
BASIC = base64.b64encode(f"{URL_USER}:{URL_PASSWORD}".encode()).decode()
SECRETS = [
    BASIC,
    URL_USER,
    URL_PASSWORD,
    QUERY_SIG,
    QUERY_PWD,
    MARKED_HEADER,
    SIGNATURE,
    "hubsig-8e9f0a1b",
    VAULT_PASS,
    API_KEY,
    BODY_PASSWORD,
    ENV_SECRET,
    SMTP_PASSWORD,
    DB_PASSWORD,
]

ACTION = """
action {
  __typename
  ... on HttpAction { url method headers { name value secret } body json bodySecret }
  ... on ShellAction { command env envVars { name value secret } }
  ... on EmailAction { to subject }
}
"""
CREATE = f"""
mutation($input: CreateJobInput!) {{
  createJob(input: $input) {{ job {{ id {ACTION} }} {queries.ERRORS} }}
}}
"""
JOBS = f"query {{ jobs(first: 10) {{ edges {{ node {{ id name {ACTION} }} }} }} }}"
EXECUTIONS = """
query($jobId: ID) { executions(first: 100, filter: {jobId: $jobId}) {
  edges { node { status error output } } } }
"""
TRIGGER = "mutation($id: ID!) { triggerJob(id: $id, force: true) { errors { message } } }"
EVERY_SECOND = [{"interval": {"everySeconds": 1}}]
RUNS_EACH = 3
WAIT_SECONDS = 30.0


def jobs(target: RunningHttpServer) -> dict[str, dict[str, Any]]:
    base = make_url(target.base_url)
    url = f"http://{URL_USER}:{URL_PASSWORD}@{base.host}:{base.port}/ok?sig={QUERY_SIG}&pwd={QUERY_PWD}&page=1"
    http = {
        "url": url,
        "headers": [
            {"name": "X-Trace-Note", "value": MARKED_HEADER, "secret": True},
            {"name": "X-Hub-Signature-256", "value": SIGNATURE},
            {"name": "X-Vault-Pass", "value": VAULT_PASS},
            # Authorization itself is httpx's, from the URL's userinfo.
            {"name": "X-Forwarded-Authorization", "value": f"Bearer {API_KEY}"},
        ],
        "json": {"user": "ops", "password": BODY_PASSWORD},
        "bodySecret": True,
    }
    failing = {**http, "url": url.replace("/ok?", "/status/500?")}
    shell = {
        "command": ["/bin/sh", "-c", 'printf %s "$API_TOKEN" | sha256sum'],
        "envVars": [{"name": "API_TOKEN", "value": ENV_SECRET}],
    }
    mail = {"to": ["ops@example.com"], "subject": "report", "body": "hello"}
    return {
        "http": {"http": http},
        "failing": {"http": failing},
        "shell": {"shell": shell},
        "email": {"email": mail},
    }


async def poll(
    fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], process: RunningProcess
) -> T:
    seen: T | None = None
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                assert process.process.poll() is None, process.output()
                seen = await fetch()
                if done(seen):
                    return seen
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {WAIT_SECONDS} s: {seen}\n{process.output()}") from None


class Api:
    """The server's API over real HTTP, keeping every response body it received."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.responses: list[str] = []

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables})
        self.responses.append(response.text)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    async def executions(self, job_id: str) -> list[dict[str, Any]]:
        data = await self.data(EXECUTIONS, {"jobId": job_id})
        return [edge["node"] for edge in data["executions"]["edges"]]


@asynccontextmanager
async def serving(
    tmp_path: Path, database_url: str, level: str, log_format: str
) -> AsyncIterator[tuple[RunningProcess, Api]]:
    port = free_port()
    env = clean_environment(
        GQL_SCHEDULER_DATABASE_URL=database_url,
        GQL_SCHEDULER_PORT=str(port),
        GQL_SCHEDULER_LOG_LEVEL=level,
        GQL_SCHEDULER_LOG_FORMAT=log_format,
        GQL_SCHEDULER_ENABLE_SHELL="true",
        # Nothing listens there: each mail fails, and its error is checked too.
        GQL_SCHEDULER_SMTP_URL=f"smtp://mailer:{SMTP_PASSWORD}@{LOCALHOST}:{closed_port()}",
    )
    command = [sys.executable, "-m", "gql_scheduler", "serve"]
    with running(command, cwd=tmp_path, env=env, log_dir=tmp_path / "logs") as started:
        # Blocks this loop briefly: nothing on it is needed before the server answers.
        wait_until_answers(started, f"http://{LOCALHOST}:{port}/healthz")
        base = f"http://{LOCALHOST}:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as client:
            yield started, Api(client)


def with_password(database_url: str) -> str:
    # Trust authentication accepts any password: this one is sent on every connection.
    return make_url(database_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("level", "log_format"), [("DEBUG", "json"), ("DEBUG", "text"), ("INFO", "text")]
)
async def test_no_secret_in_any_log_response_or_error(
    tmp_path: Path, empty_database_url: str, level: str, log_format: str
) -> None:
    async with (
        http_server() as target,
        serving(tmp_path, with_password(empty_database_url), level, log_format) as (server, api),
    ):
        ids = {}
        for name, action in jobs(target).items():
            job_input = queries.job_input(name, action=action, schedules=EVERY_SECOND)
            payload = (await api.data(CREATE, {"input": job_input}))["createJob"]
            assert payload["errors"] == [], payload["errors"]
            ids[name] = payload["job"]["id"]
            await api.data(TRIGGER, {"id": ids[name]})
        histories = {}
        for name, job_id in ids.items():
            histories[name] = await poll(
                lambda job_id=job_id: api.executions(job_id),
                lambda runs: (
                    len([r for r in runs if r["status"] not in ("QUEUED", "RUNNING")]) >= RUNS_EACH
                ),
                server,
            )
        listed = await api.data(JOBS)
    server.stop()
    logs = server.stdout() + server.stderr()

    # The runs really happened, with the real secrets sent.
    assert {run["status"] for run in histories["http"]} == {"SUCCEEDED"}
    assert {run["status"] for run in histories["failing"]} == {"FAILED"}
    assert {run["status"] for run in histories["email"]} == {"FAILED"}
    digest = hashlib.sha256(ENV_SECRET.encode()).hexdigest()
    assert {run["output"].split()[0] for run in histories["shell"]} == {digest}
    received = [r for r in target.recorder.requests if r.path == "/ok"]
    assert received
    request = received[0]
    assert request.header_values("x-trace-note") == [MARKED_HEADER]
    assert request.header_values("x-forwarded-authorization") == [f"Bearer {API_KEY}"]
    assert request.header_values("authorization") == [f"Basic {BASIC}"]
    assert json.loads(request.body)["password"] == BODY_PASSWORD
    # The log lines that would have carried them exist, masked.
    assert f"http://***@{LOCALHOST}" in logs, logs
    assert len(listed["jobs"]["edges"]) == 4

    # Our own texts: every log line, every API response, every execution error (the HTTP
    # jobs' output is what the target answered, not ours, and is left out).
    ours = [logs, *api.responses]
    ours += [str(run["error"]) for runs in histories.values() for run in runs]
    ours += [str(run["output"]) for run in histories["shell"]]
    leaks = [(secret, text) for secret in SECRETS for text in ours if secret in text]
    assert leaks == [], leaks[:3]
