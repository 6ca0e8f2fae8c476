"""SIGTERM: runs that end within the grace period finish; the rest are stopped and recorded
as shut down (not failed); an at-least-once one runs again, the same attempt, elsewhere or
at the next start; nothing is left RUNNING; the process exits 0."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.processes import STOP_TIMEOUT, wait_for
from tests.test_engine_processes import (
    FAR_FUTURE,
    SETTLE_TIMEOUT,
    TRIGGER_JOB,
    Server,
    create_job,
    execution,
    executions,
    serve,
    sleep_action,
    table,
)

pytestmark = pytest.mark.timeout(120)

GRACE_SECONDS = 3.0
WITHIN_GRACE = 1.0  # a run that ends inside the grace period
OUTLASTS_GRACE = 120.0


def trigger(server: Server, job_id: str) -> str:
    payload = server.data(TRIGGER_JOB, {"id": job_id})["triggerJob"]
    assert payload["errors"] == [], payload["errors"]
    execution_id: str = payload["execution"]["id"]
    return execution_id


@pytest.mark.parametrize("delivery", ["AT_LEAST_ONCE", "AT_MOST_ONCE"])
def test_sigterm_lets_short_runs_finish_and_records_the_rest_honestly(
    tmp_path: Path, empty_database_url: str, delivery: str
) -> None:
    settings = {"GQL_SCHEDULER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS)}
    with ExitStack() as stack:
        a = stack.enter_context(serve(tmp_path, empty_database_url, "a", **settings))
        short_job = create_job(a, "short", FAR_FUTURE, action=sleep_action(WITHIN_GRACE))
        long_job = create_job(
            a, "long", FAR_FUTURE, action=sleep_action(OUTLASTS_GRACE), delivery=delivery
        )
        short_id, long_id = trigger(a, short_job), trigger(a, long_job)
        wait_for(
            lambda: all(execution(a, run).status == "RUNNING" for run in (short_id, long_id)),
            timeout=SETTLE_TIMEOUT,
            describe=lambda: table([execution(a, short_id), execution(a, long_id)]),
            alive=[a.started],
        )
        code = a.started.signal_and_wait(signal.SIGTERM, timeout=GRACE_SECONDS + STOP_TIMEOUT)
        assert code == 0, a.logs()

        b = stack.enter_context(serve(tmp_path, empty_database_url, "b"))
        assert execution(b, short_id).status == "SUCCEEDED"
        stopped = execution(b, long_id)
        assert stopped.status == "CANCELLED", stopped
        assert stopped.error == "shutdown: instance a stopped before the run ended", stopped
        runs = executions(b, long_job)
        assert not [run for run in runs if run.status == "RUNNING" and run.instance == "a"]
        again = [run for run in runs if run.retry_of == long_id]
        if delivery == "AT_MOST_ONCE":
            assert again == [], table(runs)
            return
        [retry] = again
        assert retry.attempt == stopped.attempt, table(runs)  # not counted as a failure
        # The next start runs it: b picks it up.
        wait_for(
            lambda: execution(b, retry.id).status == "RUNNING",
            timeout=SETTLE_TIMEOUT,
            describe=lambda: table(executions(b, long_job)),
            alive=[b.started],
        )
