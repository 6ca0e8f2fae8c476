"""End to end through the command line: real processes, real HTTP, on 127.0.0.1 only.

Every process a test starts is stopped by that test (tests.processes.running), and every
wait is bounded: READY_TIMEOUT to answer, STOP_TIMEOUT to exit, RUN_TIMEOUT for a command.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import postgres_admin_url, sqlite_url
from tests.processes import (
    LOCALHOST,
    STOP_TIMEOUT,
    RunningProcess,
    clean_environment,
    free_port,
    http_client,
    running,
    wait_until_answers,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULE = [sys.executable, "-m", "gql_scheduler"]
# pip install -e puts the console script next to the interpreter of the venv.
CONSOLE_SCRIPT = Path(sys.executable).parent / "gql-scheduler"
DEFAULT_DATABASE_FILE = "gql_scheduler.db"
RUN_TIMEOUT = 20.0

# uvicorn (>= 0.29) would raise SIGTERM again after its graceful shutdown, ending as "killed
# by SIGTERM" (-15); `serve` exits 0 instead (gql_scheduler/http_server.py). Graceful is proven
# by the lifespan's last log lines.
GRACEFUL_EXIT_CODES = (0,)
SHUTDOWN_LOG_LINES = ("gql-scheduler stopped", "Application shutdown complete")

# What must never reach a client: it would mean an internal error leaked unmasked.
LEAK_MARKERS = ("traceback", "sqlalchemy", "no such table")

MIGRATED_TABLES = {"jobs", "executions", "events", "job_tags", "alembic_version"}

CREATE_JOB = """
mutation CreateJob($input: CreateJobInput!) {
  createJob(input: $input) { job { id name } errors { field message code } }
}
"""
NOOP_JOB_INPUT: dict[str, Any] = {
    "name": "every five minutes",
    "schedules": [{"cron": {"expression": "*/5 * * * *"}}],
    "action": {"handler": {"name": "noop"}},
}


@dataclass
class Server:
    started: RunningProcess
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory: the process's files, and only those, land here."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@contextmanager
def serving(
    executable: Sequence[str | Path],
    tmp_path: Path,
    *,
    cwd: Path,
    env: dict[str, str],
    extra_args: tuple[str, ...] = (),
) -> Iterator[Server]:
    """`<executable> serve --port <free>`, answering HTTP on exit from the `with` header."""
    port = free_port()
    command = [*executable, "serve", "--port", str(port), *extra_args]
    with running(command, cwd=cwd, env=env, log_dir=tmp_path / "logs") as started:
        server = Server(started, port)
        wait_until_answers(started, f"{server.base_url}/healthz")
        yield server


def post_graphql(
    client: httpx.Client, server: Server, query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    return client.post(server.graphql_url, json={"query": query, "variables": variables})


def graphql_data(
    client: httpx.Client, server: Server, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The data of an operation that must succeed."""
    response = post_graphql(client, server, query, variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def assert_announced(server: Server) -> None:
    stdout = server.started.stdout()
    assert f"http://{LOCALHOST}:{server.port}/graphql" in stdout, server.started.output()


def stop_gracefully(server: Server) -> None:
    """SIGTERM, then the process must finish its shutdown and exit within STOP_TIMEOUT."""
    code = server.started.signal_and_wait(signal.SIGTERM, timeout=STOP_TIMEOUT)
    output = server.started.output()
    assert code in GRACEFUL_EXIT_CODES, output
    for line in SHUTDOWN_LOG_LINES:
        assert line in output, output


def assert_no_leak(text: str) -> None:
    lowered = text.lower()
    for marker in LEAK_MARKERS:
        assert marker not in lowered, text


def run_cli(
    args: Sequence[str | Path],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float = RUN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    # subprocess.run kills the child and reaps it when the timeout expires.
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sqlite_tables(path: Path) -> set[str]:
    # Read-only, so that inspecting cannot create the file or touch it.
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def alembic_revision(path: Path) -> list[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


# ---------------------------------------------------------------- serve


@pytest.mark.timeout(90)
def test_serve_on_the_default_sqlite_database(tmp_path: Path, workdir: Path) -> None:
    # No GQL_SCHEDULER_DATABASE_URL: the default is a relative file in the working directory.
    with serving(MODULE, tmp_path, cwd=workdir, env=clean_environment()) as server:
        assert_announced(server)
        # The schema was applied on start: the file exists and the service works on it.
        assert (workdir / DEFAULT_DATABASE_FILE).is_file()
        with http_client() as client:
            health = client.get(f"{server.base_url}/healthz")
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok"

            created = graphql_data(client, server, CREATE_JOB, {"input": NOOP_JOB_INPUT})
            assert created["createJob"]["errors"] == []
            assert created["createJob"]["job"]["name"] == NOOP_JOB_INPUT["name"]
            jobs = graphql_data(client, server, "{ jobs { totalCount } }")
            assert jobs["jobs"]["totalCount"] == 1

            page = client.get(server.graphql_url, headers={"Accept": "text/html"})
            assert page.status_code == 200
            assert "graphiql" in page.text.lower()
        stop_gracefully(server)
    # Any connection creates the file; the tables show the migrations ran.
    assert sqlite_tables(workdir / DEFAULT_DATABASE_FILE) >= MIGRATED_TABLES


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "empty_database_url",
    [pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_console_script_migrates_an_empty_postgresql_database(
    tmp_path: Path, workdir: Path, empty_database_url: str
) -> None:
    env = clean_environment(GQL_SCHEDULER_DATABASE_URL=empty_database_url)
    with serving([CONSOLE_SCRIPT], tmp_path, cwd=workdir, env=env) as server:
        assert_announced(server)
        with http_client() as client:
            # activeJobs reads the jobs table: it answers only if the migrations ran.
            data = graphql_data(client, server, "{ health { database activeJobs } }")
        assert data["health"] == {"database": True, "activeJobs": 0}
        stop_gracefully(server)


def test_serve_no_migrate_refuses_an_unmigrated_database(tmp_path: Path, workdir: Path) -> None:
    database = tmp_path / "empty.db"
    database.touch()  # an empty file is a valid SQLite database with no tables
    env = clean_environment(
        GQL_SCHEDULER_DATABASE_URL=sqlite_url(database), GQL_SCHEDULER_PORT=str(free_port())
    )
    result = run_cli([*MODULE, "serve", "--no-migrate"], cwd=workdir, env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "gql-scheduler migrate" in lines[0]
    assert "Traceback" not in result.stderr
    assert sqlite_tables(database) == set(), "--no-migrate must not create tables"


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GQL_SCHEDULER_PORT", "abc"),
        ("GQL_SCHEDULER_MISFIRE_POLICY", "sometimes"),
        ("GQL_SCHEDULER_DATABASE_URL", "mysql://x"),
        ("GQL_SCHEDULER_LOG_FORMAT", "xml"),
    ],
)
def test_bad_setting_stops_start_up_with_one_line(workdir: Path, variable: str, value: str) -> None:
    # A valid free port underneath: should a bad value be accepted, the server must not
    # take 8000 (or collide there) for the RUN_TIMEOUT it lives.
    env = clean_environment(**({"GQL_SCHEDULER_PORT": str(free_port())} | {variable: value}))
    result = run_cli([*MODULE, "serve"], cwd=workdir, env=env)
    assert_refused_setting(result, variable)


def test_dotenv_in_working_directory_is_read(workdir: Path) -> None:
    (workdir / ".env").write_text("GQL_SCHEDULER_PORT=abc\n", encoding="utf-8")
    result = run_cli([*MODULE, "serve"], cwd=workdir, env=clean_environment())
    assert_refused_setting(result, "GQL_SCHEDULER_PORT")


def assert_refused_setting(result: subprocess.CompletedProcess[str], variable: str) -> None:
    report = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode != 0, report
    assert "Traceback" not in result.stderr, report
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, report
    assert variable in lines[0], report


# ---------------------------------------------------------------- migrate


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path, workdir: Path) -> None:
    database = tmp_path / "migrated.db"
    env = clean_environment(GQL_SCHEDULER_DATABASE_URL=sqlite_url(database))

    first = run_cli([*MODULE, "migrate"], cwd=workdir, env=env)
    assert first.returncode == 0, first.stderr
    assert sqlite_tables(database) >= MIGRATED_TABLES
    revision = alembic_revision(database)
    assert len(revision) == 1

    # A second run finds the database at head and changes nothing.
    second = run_cli([*MODULE, "migrate"], cwd=workdir, env=env)
    assert second.returncode == 0, second.stderr
    assert sqlite_tables(database) >= MIGRATED_TABLES
    assert alembic_revision(database) == revision
    assert not (workdir / DEFAULT_DATABASE_FILE).exists(), "the default database was used"


# ---------------------------------------------------------------- bench


def test_bench_fanout_runs_every_side_and_cleans_up(tmp_path: Path, workdir: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    result = run_cli(
        [*MODULE, "bench", "fanout", "--subscribers", "3", "--rate", "5", "--seconds", "1"],
        cwd=workdir,
        env=clean_environment(TMPDIR=str(temporary)),
    )
    assert result.returncode == 0, result.stderr
    for side in ("gql-scheduler, keys", "gql-scheduler, auth off", "plain websocket fan-out"):
        assert side in result.stdout, result.stdout
    assert "ratio (gql-scheduler / plain websocket fan-out)" in result.stdout, result.stdout
    assert "µs of server CPU per delivery with auth off" in result.stdout, result.stdout
    # Every event reached every subscriber once, on every side (with keys: admitted).
    assert result.stdout.count("missed 0  duplicated 0") == 3, result.stdout
    # The bench's database lived in a temporary folder, removed at the end.
    assert list(temporary.iterdir()) == []
    assert list(workdir.iterdir()) == []


def test_bench_fire_and_load_run_both_sides_and_clean_up(tmp_path: Path, workdir: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = clean_environment(TMPDIR=str(temporary))
    fire = run_cli(
        [*MODULE, "bench", "fire", "--jobs", "20", "--seconds", "1.5", "--every", "0.25"],
        cwd=workdir,
        env=env,
    )
    assert fire.returncode == 0, fire.stderr
    lines = fire.stdout.splitlines()
    ours = next(line for line in lines if line.startswith("gql-scheduler (SQLite)"))
    baseline = next(line for line in lines if line.startswith("bare APScheduler"))
    for line in (ours, baseline):
        assert "/s  drift p50" in line, fire.stdout
        assert "worst 5 s p99" in line, fire.stdout
    assert "ratio (gql-scheduler / bare APScheduler)" in fire.stdout
    assert "CPU per execution" in fire.stdout, fire.stdout
    for line in (ours, baseline):
        cost = next(other for other in lines if other.startswith(line[:26]) and "CPU" in other)
        assert "us per execution" in cost, fire.stdout
        assert "SKIPPED 0  MISSED 0" in cost, fire.stdout
    load = run_cli([*MODULE, "bench", "load", "--jobs", "200"], cwd=workdir, env=env)
    assert load.returncode == 0, load.stderr
    assert "200 active cron jobs loaded and armed" in load.stdout, load.stdout
    assert "reconcile pass" in load.stdout, load.stdout
    assert "ratio (gql-scheduler / bare APScheduler)" in load.stdout, load.stdout
    assert list(temporary.iterdir()) == []
    assert list(workdir.iterdir()) == []


@pytest.mark.timeout(120)
def test_bench_fire_runs_on_postgresql_on_a_database_of_its_own(
    tmp_path: Path, workdir: Path, postgres_available: bool
) -> None:
    if not postgres_available:
        pytest.skip("PostgreSQL tests are skipped on this machine")
    server = postgres_admin_url()
    arguments = ["--jobs", "20", "--seconds", "1.5", "--every", "0.25", "--database-url", server]
    fire = run_cli([*MODULE, "bench", "fire", *arguments], cwd=workdir, env=clean_environment())
    assert fire.returncode == 0, fire.stderr
    lines = [line for line in fire.stdout.splitlines() if line.startswith("gql-scheduler (Pos")]
    assert len(lines) == 2, fire.stdout
    assert "/s  drift p50" in lines[0], fire.stdout
    assert "deadlocks 0" in lines[1], fire.stdout
    assert "SKIPPED 0  MISSED 0" in lines[1], fire.stdout
    assert list(workdir.iterdir()) == []


@pytest.mark.timeout(120)
def test_bench_burst_runs_every_job_once_and_probes_the_api(tmp_path: Path, workdir: Path) -> None:
    burst = run_cli(
        [*MODULE, "bench", "burst", "--jobs", "100"],
        cwd=workdir,
        env=clean_environment(TMPDIR=str(tmp_path)),
        timeout=100,
    )
    assert burst.returncode == 0, burst.stderr
    lines = burst.stdout.splitlines()
    for side in ("gql-scheduler (SQLite)", "bare APScheduler"):
        line = next(line for line in lines if line.startswith(side))
        assert "every job exactly once: yes" in line, burst.stdout
    for moment in ("before", "during"):
        line = next(line for line in lines if line.startswith(f"API {moment} the burst"))
        assert "failed 0" in line, burst.stdout
    assert "the time to clear" in burst.stdout, burst.stdout
    assert list(workdir.iterdir()) == []


@pytest.mark.timeout(180)
def test_bench_cluster_runs_one_and_two_instances_without_duplicates(
    tmp_path: Path, workdir: Path, postgres_available: bool
) -> None:
    if not postgres_available:
        pytest.skip("PostgreSQL tests are skipped on this machine")
    arguments = ["--instances", "2", "--jobs", "20", "--seconds", "4"]
    arguments += ["--database-url", postgres_admin_url()]
    cluster = run_cli(
        [*MODULE, "bench", "cluster", *arguments],
        cwd=workdir,
        env=clean_environment(TMPDIR=str(tmp_path)),
        timeout=170,
    )
    assert cluster.returncode == 0, cluster.stderr
    heads = [line for line in cluster.stdout.splitlines() if "executions/s" in line]
    assert [line.split()[0] for line in heads] == ["1", "2"], cluster.stdout
    for line in heads:
        assert "duplicates 0  deadlocks 0" in line, line
        assert "SKIPPED 0  MISSED 0" in line, line
    assert "instance-1" in cluster.stdout, cluster.stdout
    assert "instance-2" in cluster.stdout, cluster.stdout
    assert "CPU per execution: instances" in cluster.stdout, cluster.stdout
    assert list(workdir.iterdir()) == []


@pytest.mark.timeout(120)
def test_bench_mixed_runs_quiet_and_loaded_on_both_backends(tmp_path: Path, workdir: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    arguments = ["--jobs", "20", "--clients", "2", "--seconds", "3"]
    mixed = run_cli(
        [*MODULE, "bench", "mixed", *arguments],
        cwd=workdir,
        env=clean_environment(TMPDIR=str(temporary)),
        timeout=100,
    )
    assert mixed.returncode == 0, mixed.stderr
    for backend in ("SQLite", "PostgreSQL"):
        lines = [line for line in mixed.stdout.splitlines() if line.startswith(backend)]
        assert [line.split()[1] for line in lines] == ["quiet", "loaded", "API", "API", "ratio"], (
            mixed.stdout
        )
        assert "mutations" in lines[2], mixed.stdout
        assert "failed 0" in lines[2], mixed.stdout
        assert "queries" in lines[3], mixed.stdout
        assert "occurrences lost to load" in lines[4], mixed.stdout
    assert list(temporary.iterdir()) == []
    assert list(workdir.iterdir()) == []


# ---------------------------------------------------------------- export-schema


def test_export_schema_to_stdout_and_to_a_file(tmp_path: Path, workdir: Path) -> None:
    env = clean_environment()
    printed = run_cli([*MODULE, "export-schema"], cwd=workdir, env=env)
    assert printed.returncode == 0, printed.stderr

    committed = REPO_ROOT / "schema.graphql"
    if committed.is_file():
        assert printed.stdout == committed.read_text(encoding="utf-8")
    else:
        # No committed schema yet: check it is an SDL with both roots.
        assert "type Query" in printed.stdout
        assert "type Mutation" in printed.stdout

    target = tmp_path / "exported.graphql"
    written = run_cli([*MODULE, "export-schema", "--output", target], cwd=workdir, env=env)
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert target.read_text(encoding="utf-8") == printed.stdout


# ---------------------------------------------------------------- help and import


def test_help_lists_the_commands(workdir: Path) -> None:
    result = run_cli([*MODULE, "--help"], cwd=workdir, env=clean_environment())
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "export-schema"):
        assert command in result.stdout


def test_serve_help_lists_the_options(workdir: Path) -> None:
    result = run_cli([CONSOLE_SCRIPT, "serve", "--help"], cwd=workdir, env=clean_environment())
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--no-migrate"):
        assert option in result.stdout


IMPORT_PROBE = """
import json, os, threading
import gql_scheduler.app, gql_scheduler.cli
print(json.dumps([threading.active_count(), os.path.exists("gql_scheduler.db")]))
"""


def test_importing_starts_nothing(workdir: Path) -> None:
    # A fresh interpreter: this one already runs the suite's threads and imports.
    result = run_cli([sys.executable, "-c", IMPORT_PROBE], cwd=workdir, env=clean_environment())
    assert result.returncode == 0, result.stderr
    threads, database_exists = json.loads(result.stdout)
    assert threads == 1
    assert database_exists is False
    assert list(workdir.iterdir()) == []
