"""Real subprocesses for end-to-end tests: free ports, clean environments, bounded waits.

Output goes to files rather than pipes: a server that logs tracebacks would fill a pipe
nobody reads and block, and files leave no pipe to close (filterwarnings=error turns an
unclosed one into a failure).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

ENV_PREFIX = "GQL_SCHEDULER_"
LOCALHOST = "127.0.0.1"
READY_TIMEOUT = 20.0
POLL_INTERVAL = 0.1
STOP_TIMEOUT = 10.0

_T = TypeVar("_T")


def free_port() -> int:
    """A port nothing listens on now; the server binds it a moment later (a tiny race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        port: int = probe.getsockname()[1]
        return port


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any GQL_SCHEDULER_* variable, plus `variables`.

    The developer's own settings (or the suite's GQL_SCHEDULER_TEST_*) must not leak into
    the process under test; PYTHONUNBUFFERED makes its prints reach the files at once.
    """
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)
    }
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(variables)
    return environment


def http_client() -> httpx.Client:
    # trust_env=False: an HTTP(S)_PROXY in the environment must not route 127.0.0.1 calls.
    return httpx.Client(timeout=5, trust_env=False)


@dataclass
class RunningProcess:
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def output(self) -> str:
        """Both streams, for assertion messages."""
        return f"--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()}"

    def signal_and_wait(self, signal_number: int, timeout: float = STOP_TIMEOUT) -> int:
        """Send `signal_number` and return the exit code; TimeoutExpired if it outlives it."""
        self.process.send_signal(signal_number)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Terminate, then kill if it ignores that; a no-op once it has exited."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def running(
    command: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    env: dict[str, str],
    log_dir: Path,
) -> Iterator[RunningProcess]:
    """Start `command`; on exit, whatever happened in the block, it is stopped."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path = log_dir / "stdout.log"
    stderr_path = log_dir / "stderr.log"
    # The child keeps its own copies of the descriptors: ours can close at once.
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    started = RunningProcess(process, stdout_path, stderr_path)
    try:
        yield started
    finally:
        started.stop()


def wait_until_answers(
    started: RunningProcess, url: str, timeout: float = READY_TIMEOUT
) -> httpx.Response:
    """Poll `url` until it answers with any HTTP status; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    with http_client() as client:
        while True:
            if started.process.poll() is not None:
                raise AssertionError(
                    f"exited with {started.process.returncode} before {url} answered\n"
                    + started.output()
                )
            try:
                return client.get(url)
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{url} did not answer within {timeout} s\n" + started.output()
                )
            time.sleep(POLL_INTERVAL)


def kill_hard(started: RunningProcess, timeout: float = STOP_TIMEOUT) -> None:
    """kill -9: no shutdown code runs, as when the machine dies; returns once it is reaped."""
    started.process.kill()
    started.process.wait(timeout=timeout)


def wait_for(
    probe: Callable[[], _T | None],
    *,
    timeout: float,
    describe: Callable[[], str],
    alive: Sequence[RunningProcess] = (),
) -> _T:
    """Poll `probe` until it returns something truthy, and return that.

    AssertionError with `describe()` once `timeout` passes, or as soon as one of the `alive`
    processes exits (waiting on a dead server would only burn the timeout).
    """
    deadline = time.monotonic() + timeout
    while True:
        for started in alive:
            if started.process.poll() is not None:
                raise AssertionError(
                    f"exited with {started.process.returncode} while waiting\n"
                    + describe()
                    + "\n"
                    + started.output()
                )
        found = probe()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s\n" + describe())
        time.sleep(POLL_INTERVAL)


def let_time_pass(seconds: float, *alive: RunningProcess) -> None:
    """Sleep `seconds` in small steps, failing early if one of `alive` exits meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for started in alive:
            if started.process.poll() is not None:
                raise AssertionError(
                    f"exited with {started.process.returncode}\n" + started.output()
                )
        time.sleep(min(POLL_INTERVAL, left))
