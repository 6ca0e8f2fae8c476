"""A full disk under SQLite loses no occurrence, as an outage of PostgreSQL loses none
(test_outage_engine.py): while the file system is full the engine's claims fail, the
occurrences stay owed, `/readyz` says why, API writes fail as UNAVAILABLE, and once space
is freed every occurrence is recorded exactly once, run or settled by its misfire policy.

The server is a real `serve` process whose database lives on a small tmpfs mounted in a
mount namespace of its own (`unshare`): the mount exists only for that process and goes
with it, so nothing of the machine changes. The test fills the file system through
/proc/PID/root, which shows that namespace's files.
"""

from __future__ import annotations

import errno
import itertools
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import FileIO
from pathlib import Path
from typing import Any

import pytest

from gql_scheduler.store import migrations
from tests.processes import (
    clean_environment,
    free_port,
    http_client,
    let_time_pass,
    running,
    wait_for,
    wait_until_answers,
)
from tests.test_engine_processes import CREATE_JOB, EXECUTION, MODULE, TRIGGER_JOB, Server
from tests.test_outage_engine import (
    HISTORY,
    OCCURRENCES,
    POLICIES,
    RETRIED,
    STEP,
    assert_every_occurrence_settled,
)

pytestmark = pytest.mark.timeout(120)

FILE_SYSTEM_BYTES = 8 * 1024 * 1024
OUTAGE = timedelta(seconds=4)
RUN_SECONDS = 2.0  # ends inside the outage
CHUNK = b"\0" * 65536


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--map-root-user", "--mount", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


needs_unshare = pytest.mark.skipif(
    not _can_unshare(), reason="needs unshare (util-linux) and user and mount namespaces"
)


@contextmanager
def serve_on_small_disk(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A server whose SQLite file is on its own FILE_SYSTEM_BYTES tmpfs; yields it and the
    mount point as this process reaches it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    port = free_port()
    env = clean_environment(
        GQL_SCHEDULER_DATABASE_URL=f"sqlite+aiosqlite:///{mount / 'scheduler.db'}",
        GQL_SCHEDULER_PORT=str(port),
        GQL_SCHEDULER_INSTANCE_NAME="a",
        GQL_SCHEDULER_RECONCILE_SECONDS="0.5",
        GQL_SCHEDULER_MISFIRE_GRACE_SECONDS="0.5",
    )
    mount_then_serve = f'mount -t tmpfs -o size={FILE_SYSTEM_BYTES} tmpfs "$0" && exec "$@"'
    command = [
        "unshare", "--map-root-user", "--mount", "--propagation", "private",
        "sh", "-c", mount_then_serve, str(mount), *MODULE, "serve",
    ]  # fmt: skip
    with (
        running(command, cwd=tmp_path, env=env, log_dir=tmp_path / "logs") as started,
        http_client() as client,
    ):
        server = Server("a", started, port, client)
        wait_until_answers(started, f"{server.base_url}/healthz")
        # exec keeps the pid: /proc/PID/root is the namespace's view of the files.
        yield server, Path(f"/proc/{started.process.pid}/root") / mount.relative_to("/")


def fill(folder: Path) -> Path:
    """Write a ballast file until the file system is full."""
    ballast = folder / "ballast"
    # Unbuffered: a buffered file keeps what did not fit and fails again when it closes.
    with ballast.open("wb", buffering=0) as out:
        assert _write_until_refused(out) == errno.ENOSPC
    return ballast


def _write_until_refused(out: FileIO) -> int | None:
    while True:
        try:
            out.write(CHUNK)
        except OSError as error:
            return error.errno


def create_jobs(server: Server, anchor: datetime) -> dict[str, str]:
    ids = {}
    for policy in POLICIES:
        job = {
            "name": policy,
            "schedules": [{"interval": {"everySeconds": 0.5, "anchor": anchor.isoformat()}}],
            "action": {"handler": {"name": "noop"}},
            "misfirePolicy": policy,
        }
        payload = server.data(CREATE_JOB, {"input": job})["createJob"]
        assert payload["errors"] == [], payload
        ids[policy] = payload["job"]["id"]
    return ids


def start_a_run_that_ends_while_full(server: Server) -> str:
    """A run that is going when the disk fills, and ends before it is freed."""
    job = {
        "name": "ends-while-full",
        "schedules": [{"cron": {"expression": "0 9 * * 1"}}],
        "action": {"handler": {"name": "sleep", "args": {"seconds": RUN_SECONDS}}},
    }
    job_id = server.data(CREATE_JOB, {"input": job})["createJob"]["job"]["id"]
    execution_id: str = server.data(TRIGGER_JOB, {"id": job_id})["triggerJob"]["execution"]["id"]
    wait_for(
        lambda: server.data(EXECUTION, {"id": execution_id})["execution"]["status"] == "RUNNING",
        timeout=10,
        describe=server.logs,
    )
    return execution_id


def history(server: Server, job_id: str) -> list[dict[str, Any]]:
    edges = server.data(HISTORY, {"jobId": job_id})["executions"]["edges"]
    runs = [edge["node"] for edge in edges if edge["node"]["trigger"] in OCCURRENCES]
    return sorted(runs, key=lambda run: datetime.fromisoformat(run["scheduledFor"]))


def wait_until(server: Server, at: datetime) -> None:
    let_time_pass(max(0.0, (at - datetime.now(UTC)).total_seconds()), server.started)


def refusals_while_full(server: Server) -> datetime:
    """/readyz says the engine's writes fail, and mutations fail fast as UNAVAILABLE; when
    the engine's writes were first seen failing."""

    def not_ready() -> dict[str, Any] | None:
        response = server.client.get(f"{server.base_url}/readyz")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 503 else None

    ready = wait_for(not_ready, timeout=10, describe=server.logs, alive=[server.started])
    refused_at = datetime.now(UTC)
    assert "disk is full" in " ".join(ready["problems"]), ready
    # A write may still fit in WAL space SQLite had already taken; they soon stop fitting.
    names = (f"while-full-{n}" for n in itertools.count())
    refused = wait_for(lambda: _refused_code(server, next(names)), timeout=10, describe=server.logs)
    assert refused == "UNAVAILABLE"
    return refused_at


def _refused_code(server: Server, name: str) -> str | None:
    job = {"name": name, "schedules": [{"cron": {"expression": "0 9 * * 1"}}],
           "action": {"handler": {"name": "noop"}}}  # fmt: skip
    response = server.client.post(
        f"{server.base_url}/graphql", json={"query": CREATE_JOB, "variables": {"input": job}}
    )
    errors = response.json().get("errors")
    if not errors:
        return None
    assert "Traceback" not in response.text, response.text
    assert len(errors) == 1, response.text
    code: str = errors[0]["extensions"]["code"]
    return code


@needs_unshare
def test_a_full_disk_loses_no_occurrence_whatever_the_policy(tmp_path: Path) -> None:
    with serve_on_small_disk(tmp_path) as (server, disk):
        anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        ids = create_jobs(server, anchor)
        wait_until(server, anchor + 2 * STEP)
        ending = start_a_run_that_ends_while_full(server)
        full_at = datetime.now(UTC)
        ballast = fill(disk)
        refused_at = refusals_while_full(server)
        wait_until(server, full_at + OUTAGE)
        ballast.unlink()
        freed_at = datetime.now(UTC)
        settled_at = freed_at + 4 * STEP

        def through_settled() -> dict[str, list[dict[str, Any]]] | None:
            found = {policy: history(server, job) for policy, job in ids.items()}
            last = [
                datetime.fromisoformat(runs[-1]["scheduledFor"]) for runs in found.values() if runs
            ]
            return found if len(last) == len(ids) and min(last) >= settled_at else None

        found = wait_for(through_settled, timeout=30, describe=server.logs, alive=[server.started])
        ended = server.data(EXECUTION, {"id": ending})["execution"]
        ready = server.client.get(f"{server.base_url}/readyz")
        logs = server.logs()
    assert ready.status_code == 200, ready.text
    assert ended["status"] == "SUCCEEDED", ended  # its end was kept until it could be written
    inside = (refused_at, freed_at - STEP - RETRIED)  # nobody could claim these
    assert_every_occurrence_settled(found, inside)
    assert logs.count("the database is unreachable") == 1, logs
    assert logs.count("the database is reachable again") == 1, logs
    assert "Traceback" not in logs, logs


@needs_unshare
@pytest.mark.parametrize("exists", [False, True], ids=["new-file", "existing-file"])
def test_serve_on_a_read_only_folder_says_so_in_one_line(tmp_path: Path, exists: bool) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    url = f"sqlite+aiosqlite:///{folder / 'scheduler.db'}"
    if exists:
        migrations.upgrade(url)
    read_only_then_serve = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    command = [
        "unshare", "--map-root-user", "--mount", "--propagation", "private",
        "sh", "-c", read_only_then_serve, str(folder), *MODULE, "serve",
    ]  # fmt: skip
    env = clean_environment(GQL_SCHEDULER_DATABASE_URL=url, GQL_SCHEDULER_PORT=str(free_port()))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    [line] = done.stderr.splitlines()
    assert line.startswith("gql-scheduler: "), line
    assert "unable to open database file" in line, line
