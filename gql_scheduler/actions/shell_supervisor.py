"""The small supervisor every shell action runs under, so that its work dies with the server.

Run as `python -I shell_supervisor.py STATUS_FD -- PROGRAM ARGS...` (standard library only,
so that it starts fast and finds nothing of the caller's environment). It leads the run's
process group (the server starts it in a new session) and:

- watches its parent, and once the server is gone, even by kill -9, signals the whole
  group, waits a grace period, then kills what is left: a program's own children would
  outlive the server otherwise (re-parented to init), and at-least-once recovery would
  then start a second copy of work that still runs;
- reports on STATUS_FD whether the program started (`started`, or `error ERRNO FILENAME`),
  then exits as the program did (the same code, or the same signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

KILL_GRACE_SECONDS = 5.0
PARENT_POLL_SECONDS = 0.1


def report(status_fd: int, text: str) -> None:
    os.write(status_fd, text.encode("utf-8", "replace") + b"\n")
    os.close(status_fd)


def start(command: list[str], status_fd: int) -> subprocess.Popen[bytes] | None:
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except OSError as error:
        report(status_fd, f"error {error.errno} {error.filename or command[0]}")
        return None
    report(status_fd, "started")
    return child


def stop_group_when_orphaned(parent: int) -> None:
    """Once the server is gone: SIGTERM to the group, then SIGKILL after the grace period.

    The parent is polled rather than waited for with PR_SET_PDEATHSIG: the kernel sends that
    signal once per thread of a dying server, the first while it is still the parent, and a
    watcher driven by it missed the last one now and then under load. A stop asked by a
    live server needs nothing from here: the server signals the group itself.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    group = os.getpgrp()
    _signal_group(group, signal.SIGTERM)
    time.sleep(KILL_GRACE_SECONDS)
    _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal_number)


def exit_as(returncode: int) -> None:
    if returncode >= 0:
        sys.exit(returncode)
    number = -returncode
    if number not in (signal.SIGKILL, signal.SIGSTOP):  # those keep their default anyway
        signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    sys.exit(128 + number)  # for a signal that does not end a process


def main(argv: list[str]) -> None:
    parent = os.getppid()
    status_fd, command = int(argv[0]), argv[2:]
    if os.getppid() != parent:  # the server died before the request took effect
        report(status_fd, "error 0 the server stopped")
        sys.exit(1)
    # Ignored by the supervisor itself: the program gets them too (they are sent to the
    # group), and the supervisor outlives it to report its exit.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda *_: None)
    child = start(command, status_fd)
    if child is None:
        sys.exit(1)
    watcher = threading.Thread(target=stop_group_when_orphaned, args=(parent,), daemon=True)
    watcher.start()
    returncode = child.wait()
    if os.getppid() != parent:
        watcher.join()  # orphaned: the whole group goes before the supervisor does
    exit_as(returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
