"""The package as a user gets it: sdist, then a wheel from it, installed into a fresh venv.

The rest of the suite runs on an editable install, which serves every module from the
checkout whatever pyproject.toml says ships, so a package left out of the wheel goes
unnoticed there. Here the installed commands run outside the checkout, with nothing of it
on sys.path. Building and installing take most of the time (about 15 s here); the module
does it once, and its tests share it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from gql_scheduler.store import migrations
from tests.processes import http_client, wait_for
from tests.test_cli import (
    REPO_ROOT,
    graphql_data,
    run_cli,
    serving,
    stop_gracefully,
)

# Build, venv and install are charged to the tests that first need them (4 s and 12 s
# here); the bound leaves room for a slow or busy machine.
pytestmark = pytest.mark.timeout(600)

BUILD_TIMEOUT = 300.0
INSTALL_TIMEOUT = 300.0
# A job every 0.2 s has its first run well within this, even on a busy machine.
FIRST_RUN_TIMEOUT = 20.0

# What a clean clone does not have. Above all no *.egg-info: setuptools reads an old
# SOURCES.txt back into the sdist, which would hide files the sdist no longer takes in.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "__pycache__", ".*_cache", "build", "dist", "*.db*", ".env"
)

CREATE_JOB = """
mutation {
  createJob(input: {name: "wheel-check", schedules: [{interval: {everySeconds: 0.2}}],
                    action: {handler: {name: "noop"}}}) {
    job { id }
    errors { field message code }
  }
}
"""
SUCCEEDED_RUNS = """
query ($jobId: ID!) {
  executions(first: 5, filter: {jobId: $jobId, statuses: [SUCCEEDED]}) { totalCount }
}
"""


@dataclass
class Installed:
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "gql-scheduler"


def run_step(command: Sequence[str | Path], *, timeout: float, cwd: Path) -> None:
    """A build or install step that must succeed; its output goes into the failure."""
    # subprocess.run kills the child and reaps it when the timeout expires.
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=user_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


def user_environment(**variables: str) -> dict[str, str]:
    """What a user's shell has: none of our settings, and nothing that points at the checkout.

    Unlike tests.processes.clean_environment, PYTHONPATH and PYTHONHOME go too: either
    could let the installed commands import the checkout instead of the wheel.
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GQL_SCHEDULER_") and name not in ("PYTHONPATH", "PYTHONHOME")
    }
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(variables)
    return environment


def build_wheel(target: Path) -> Path:
    """`python -m build` on a copy of the checkout: the sdist, then the wheel built from it."""
    source = target / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_IN_A_CLONE)
    dist = target / "dist"
    # Without --sdist or --wheel, build makes the wheel from the unpacked sdist, so a file
    # missing from the sdist is missing from the wheel too.
    run_step(
        [sys.executable, "-m", "build", "--outdir", dist, source], timeout=BUILD_TIMEOUT, cwd=target
    )
    assert len(list(dist.glob("*.tar.gz"))) == 1, list(dist.iterdir())
    (wheel,) = dist.glob("*.whl")
    return wheel


def install_into_fresh_venv(wheel: Path, venv: Path) -> Installed:
    run_step([sys.executable, "-m", "venv", venv], timeout=INSTALL_TIMEOUT, cwd=venv.parent)
    installed = Installed(venv)
    # The wheel file itself, not the project folder, and not editable.
    run_step(
        [installed.python, "-m", "pip", "install", "--no-input", wheel],
        timeout=INSTALL_TIMEOUT,
        cwd=venv.parent,
    )
    return installed


def expected_wheel_files() -> set[str]:
    """Every module of gql_scheduler/, every file of web/static/ (GraphiQL's), and the
    migrations from alembic/ as their package."""
    package = REPO_ROOT / "gql_scheduler"
    modules = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in package.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    modules |= {
        path.relative_to(REPO_ROOT).as_posix()
        for path in (package / "web" / "static").rglob("*")
        if path.is_file()
    }
    scripts = REPO_ROOT / "alembic"
    shipped = [scripts / "env.py", scripts / "script.py.mako", *scripts.glob("versions/*.py")]
    return modules | {
        f"gql_scheduler/migrations/{path.relative_to(scripts).as_posix()}" for path in shipped
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install_into_fresh_venv(wheel, tmp_path_factory.mktemp("user") / "venv")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """The working directory of the installed commands: empty, and not in the checkout."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def test_wheel_ships_every_module_and_nothing_else(wheel: Path) -> None:
    # Also covers modules that the commands below never import (the benchmarks).
    with zipfile.ZipFile(wheel) as archive:
        names = {name for name in archive.namelist() if ".dist-info/" not in name}
    assert names == expected_wheel_files()


def test_installed_package_is_the_wheel_and_exports_the_schema(
    installed: Installed, outside: Path
) -> None:
    env = user_environment()
    where = run_cli(
        [installed.python, "-c", "import gql_scheduler; print(gql_scheduler.__file__)"],
        cwd=outside,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), where.stdout

    # The whole API imports here: a package missing from the wheel fails this first.
    exported = run_cli([installed.script, "export-schema"], cwd=outside, env=env)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == (REPO_ROOT / "schema.graphql").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "empty_database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_installed_wheel_migrates_an_empty_database(
    installed: Installed, outside: Path, empty_database_url: str
) -> None:
    # The migration scripts must come from the wheel: there is no alembic/ folder here.
    env = user_environment(GQL_SCHEDULER_DATABASE_URL=empty_database_url)
    result = run_cli([installed.script, "migrate"], cwd=outside, env=env)
    assert result.returncode == 0, result.stderr
    assert migrations.current_revision(empty_database_url) == migrations.head_revision()


def test_installed_wheel_serves_and_runs_a_job(
    installed: Installed, outside: Path, tmp_path: Path
) -> None:
    # No database setting: the default SQLite file lands in the working directory.
    with serving([installed.script], tmp_path, cwd=outside, env=user_environment()) as server:
        with http_client() as client:
            health = client.get(f"{server.base_url}/healthz")
            assert health.status_code == 200, health.text
            # GraphiQL's files come from the wheel too.
            page = client.get(server.graphql_url, headers={"Accept": "text/html"})
            assert page.status_code == 200, page.text
            script = client.get(f"{server.base_url}/graphql/assets/graphiql.min.js")
            assert script.status_code == 200, script.text
            assert script.content.rstrip().endswith(b"sourceMappingURL=graphiql.min.js.map")

            created = graphql_data(client, server, CREATE_JOB)["createJob"]
            assert created["errors"] == [], created
            job_id = created["job"]["id"]

            def succeeded_runs() -> int | None:
                data = graphql_data(client, server, SUCCEEDED_RUNS, {"jobId": job_id})
                count: int = data["executions"]["totalCount"]
                return count or None

            wait_for(
                succeeded_runs,
                timeout=FIRST_RUN_TIMEOUT,
                describe=server.started.output,
                alive=[server.started],
            )
        # Exit 0 after a graceful shutdown, with the shutdown logged (see tests.test_cli).
        stop_gracefully(server)
    assert (outside / "gql_scheduler.db").is_file()
