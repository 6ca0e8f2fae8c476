"""The key commands as an operator runs them, against running instances, and the refusal
to expose the service without authentication."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from gql_scheduler.settings import Settings
from tests.engine_helpers import poll
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.processes import clean_environment

pytestmark = pytest.mark.timeout(120)

COMMAND = [sys.executable, "-m", "gql_scheduler"]
QUERY = {"query": "{ jobs(first: 1) { totalCount } }"}
COMMAND_TIMEOUT = 30.0


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


async def gql_scheduler(*args: str, database_url: str, **variables: str) -> Finished:
    """The command in its own process (the test's event loop serves the instances)."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_environment(GQL_SCHEDULER_DATABASE_URL=database_url, **variables),
    )
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())


async def accepted(server: LiveServer, secret: str) -> bool:
    response = await server.http.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {secret}"}
    )
    return response.status_code == 200


@pytest.fixture
async def instances(database_url: str, backend: str) -> AsyncIterator[list[LiveServer]]:
    """Two instances on one PostgreSQL database; SQLite runs one process."""
    count = 2 if backend == "postgresql" else 1
    async with AsyncExitStack() as stack:
        servers = []
        for number in range(count):
            settings: Settings = settings_for(
                database_url,
                auth="required",
                auth_refresh_seconds=0.3,
                instance_name=f"instance-{number}",
            )
            servers.append(await stack.enter_async_context(live_server(settings)))
        yield servers


async def test_a_key_made_and_revoked_on_the_command_line_applies_everywhere_at_once(
    instances: list[LiveServer], database_url: str
) -> None:
    made = await gql_scheduler(
        "create-api-key", "--name", "deployer", "--role", "operator", database_url=database_url
    )
    assert made.code == 0, made.stderr
    secret = made.stdout.splitlines()[-1]
    assert secret.startswith("gqls_")
    for server in instances:  # no restart: each instance's next refresh has it
        await poll(lambda s=server: accepted(s, secret), bool, within=10.0)

    listed = await gql_scheduler("list-api-keys", database_url=database_url)
    assert listed.code == 0, listed.stderr
    [header, row] = listed.stdout.splitlines()
    assert header.split() == ["NAME", "ROLE", "CREATED", "LAST", "USED"]
    name, role, _created, _last_used = row.split()
    assert (name, role) == ("deployer", "operator")
    assert secret not in listed.stdout

    revoked = await gql_scheduler("revoke-api-key", "--name", "deployer", database_url=database_url)
    assert revoked.code == 0, revoked.stderr
    for server in instances:
        await poll(lambda s=server: accepted(s, secret), lambda ok: not ok, within=10.0)


async def test_last_use_is_recorded(instances: list[LiveServer], database_url: str) -> None:
    made = await gql_scheduler(
        "create-api-key", "--name", "dash", "--role", "viewer", database_url=database_url
    )
    secret = made.stdout.splitlines()[-1]
    server = instances[0]
    await poll(lambda: accepted(server, secret), bool, within=10.0)

    async def last_used() -> str:
        listed = await gql_scheduler("list-api-keys", database_url=database_url)
        return listed.stdout.splitlines()[-1].split()[-1]

    await poll(last_used, lambda seen: seen != "never", within=10.0)


async def test_only_a_digest_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    url = f"sqlite+aiosqlite:///{path}"
    made = await gql_scheduler(
        "create-api-key", "--name", "ci", "--role", "admin", database_url=url
    )
    assert made.code == 0, made.stderr
    assert "shown only now" in made.stdout
    secret = made.stdout.splitlines()[-1]
    stored = await asyncio.to_thread(_stored_bytes, tmp_path)
    assert secret.encode() not in stored
    assert secret.split("_")[-1].encode() not in stored  # nor its random part


def _stored_bytes(folder: Path) -> bytes:
    """The database file and its WAL, as they are on disk."""
    return b"".join(path.read_bytes() for path in sorted(folder.glob("keys.db*")))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["revoke-api-key", "--name", "nobody"], "no API key named 'nobody'"),
        (["create-api-key", "--name", "bad name!", "--role", "viewer"], "a key name is"),
    ],
)
async def test_mistakes_get_one_clear_line(tmp_path: Path, args: list[str], expected: str) -> None:
    finished = await gql_scheduler(*args, database_url=f"sqlite+aiosqlite:///{tmp_path}/k.db")
    assert finished.code == 1
    assert expected in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1
    assert "Traceback" not in finished.stderr


async def test_a_name_is_taken_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/k.db"
    args = ("create-api-key", "--name", "twice", "--role", "viewer")
    assert (await gql_scheduler(*args, database_url=url)).code == 0
    again = await gql_scheduler(*args, database_url=url)
    assert again.code == 1
    assert "an API key named 'twice' exists" in again.stderr
    assert "gqls_" not in again.stdout


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
async def test_serve_refuses_to_expose_an_unauthenticated_service(
    tmp_path: Path, host: str
) -> None:
    finished = await gql_scheduler(
        "serve",
        "--host",
        host,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db",
        GQL_SCHEDULER_AUTH="disabled",
    )
    assert finished.code == 1
    [line] = finished.stderr.strip().splitlines()
    assert "GQL_SCHEDULER_AUTH=disabled" in line
    assert f"refusing to listen on {host}" in line
    assert not (tmp_path / "x.db").exists()  # it stopped before touching anything


@pytest.mark.parametrize(
    ("auth", "host", "required"),
    [
        ("auto", "127.0.0.1", False),
        ("auto", "::1", False),
        ("auto", "localhost", False),
        ("auto", "0.0.0.0", True),
        ("auto", "10.1.2.3", True),
        ("auto", "scheduler.internal", True),
        ("required", "127.0.0.1", True),
        ("disabled", "127.0.0.1", False),
        ("AUTO", "0.0.0.0", True),
    ],
)
def test_auto_requires_keys_unless_only_loopback_listens(
    auth: str, host: str, required: bool
) -> None:
    settings = Settings(_env_file=None, auth=auth, host=host)  # type: ignore[call-arg]
    assert settings.auth_required is required
