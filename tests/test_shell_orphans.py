"""A shell job's processes die with the instance that started them, even by kill -9, so that
at-least-once recovery never runs a second copy beside one still going."""

from __future__ import annotations

import asyncio
import random
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.processes import wait_for
from tests.test_engine_processes import (
    FAR_FUTURE,
    LIVE,
    SETTLE_TIMEOUT,
    TRIGGER_JOB,
    Server,
    create_job,
    execution,
    executions,
    serve,
    table,
)

pytestmark = pytest.mark.timeout(120)

JOBS = 10


def copies(marker: str) -> list[str]:
    """The processes whose command line holds `marker` (the shells and their sleeps)."""
    found = subprocess.run(
        ["pgrep", "-af", marker], capture_output=True, text=True, timeout=10, check=False
    )
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def sleeps(marker: str) -> list[str]:
    return [line for line in copies(marker) if line.split(maxsplit=1)[1].startswith("sleep")]


def start_long_shell_jobs(server: Server, marker: str) -> dict[str, str]:
    """JOBS running shell jobs, each a shell with two sleeps: job id -> execution id."""
    # Two background sleeps and a wait: grandchildren, not only the direct child.
    command = ["sh", "-c", f"sleep {marker} & sleep {marker} & wait"]
    started = {}
    for number in range(JOBS):
        job_id = create_job(
            server, f"long-{number}", FAR_FUTURE, action={"shell": {"command": command}}
        )
        payload = server.data(TRIGGER_JOB, {"id": job_id})["triggerJob"]
        assert payload["errors"] == [], payload["errors"]
        started[job_id] = payload["execution"]["id"]
    wait_for(
        lambda: (
            all(execution(server, run).status == "RUNNING" for run in started.values())
            and len(sleeps(marker)) == 2 * JOBS
        ),
        timeout=SETTLE_TIMEOUT,
        describe=lambda: "\n".join(copies(marker)),
        alive=[server.started],
    )
    return started


def test_kill_9_leaves_no_process_behind_and_recovery_runs_one_copy(
    tmp_path: Path, empty_database_url: str
) -> None:
    # A sleep length no other process on the machine has: it marks this test's processes.
    marker = f"{random.randint(100_000, 999_999)}.5"
    settings = {"GQL_SCHEDULER_ENABLE_SHELL": "true"}
    try:
        with ExitStack() as stack:
            a = stack.enter_context(serve(tmp_path, empty_database_url, "a", **settings))
            lost = start_long_shell_jobs(a, marker)
            a.kill()
            # Nothing the instance started outlives it (each run's supervisor takes its
            # group down when the kernel tells it that its parent died).
            wait_for(
                lambda: copies(marker) == [],
                timeout=SETTLE_TIMEOUT,
                describe=lambda: "\n".join(copies(marker)),
            )

            b = stack.enter_context(serve(tmp_path, empty_database_url, "b", **settings))

            # The leases expire and every at-least-once run starts again on "b": one copy.
            def retried() -> bool:
                runs = [run for job in lost for run in executions(b, job)]
                again = [run for run in runs if run.retry_of in lost.values()]
                return len(again) == JOBS and all(run.status == "RUNNING" for run in again)

            wait_for(
                retried,
                timeout=SETTLE_TIMEOUT * 2,
                describe=lambda: table([run for job in lost for run in executions(b, job)]),
                alive=[b.started],
            )
            # RUNNING is recorded as the supervisor starts: its shell forks the sleeps soon after.
            wait_for(
                lambda: len(sleeps(marker)) >= 2 * JOBS,
                timeout=SETTLE_TIMEOUT,
                describe=lambda: "\n".join(copies(marker)),
            )
            assert len(sleeps(marker)) == 2 * JOBS, "\n".join(copies(marker))
            for job, lost_id in lost.items():
                assert execution(b, lost_id).status not in LIVE, table(executions(b, job))
    finally:
        subprocess.run(["pkill", "-9", "-f", marker], timeout=10, check=False)
    assert copies(marker) == []  # b's stop took its runs down with it


# ---------------------------------------------------------------- a live instance cut off


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite has no network path to cut
@pytest.mark.parametrize("fault", ["cut", "stall"])
async def test_runs_whose_leases_cannot_be_renewed_stop_before_another_copy_starts(
    database_url: str, fault: str
) -> None:
    from tests.engine_helpers import poll
    from tests.graphql_client import settings_for
    from tests.live_server import live_server
    from tests.tcp_proxy import tcp_proxy

    marker = f"{random.randint(100_000, 999_999)}.25"
    seen: list[int] = []

    async def running_copies() -> int:
        found = len(await asyncio.to_thread(sleeps, marker))
        seen.append(found)
        return found

    try:
        async with tcp_proxy(database_url) as proxy:
            settings = settings_for(
                proxy.url_for(database_url), enable_shell=True, lease_seconds=1.5
            )
            async with live_server(settings) as server:
                job = await server.data(
                    "mutation($input: CreateJobInput!) { createJob(input: $input) { job { id } } }",
                    {
                        "input": {
                            "name": "long",
                            "schedules": [FAR_FUTURE],
                            "action": {"shell": {"command": ["sleep", marker]}},
                        }
                    },
                )
                job_id = job["createJob"]["job"]["id"]
                await server.data(TRIGGER_JOB, {"id": job_id})
                await poll(running_copies, lambda count: count == 1, within=SETTLE_TIMEOUT)
                # This instance lives on, but its database refuses it, or never answers.
                await (proxy.cut() if fault == "cut" else proxy.stall())
                await poll(running_copies, lambda count: count == 0, within=SETTLE_TIMEOUT)
                await proxy.restore()
                # Recovered (the lease expired) and run again: one copy, never two.
                await poll(running_copies, lambda count: count == 1, within=SETTLE_TIMEOUT * 2)
                assert max(seen) == 1, seen
    finally:
        await asyncio.to_thread(
            subprocess.run, ["pkill", "-9", "-f", marker], timeout=10, check=False
        )
