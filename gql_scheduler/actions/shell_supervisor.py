"""The small supervisor every shell action runs under, so that its work dies with the server.

Run as `python -I shell_supervisor.py STATUS_FD -- PROGRAM ARGS...` (standard library only,
so that it starts fast and finds nothing of the caller's environment). It leads the run's
process group (the server starts it in a new session) and:

- asks Linux to send it SIGTERM when the server dies, even by kill -9 (PR_SET_PDEATHSIG);
  a program's own children would outlive the server otherwise (re-parented to init), and
  at-least-once recovery would then start a second copy of work that still runs;
- on SIGTERM, from the server (a stop) or from the kernel (the server died), signals the
  whole group, waits a grace period, then kills what is left;
- reports on STATUS_FD whether the program started (`started`, or `error ERRNO FILENAME`),
  then exits as the program did (the same code, or the same signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading

PR_SET_PDEATHSIG = 1
KILL_GRACE_SECONDS = 5.0


def die_with_parent() -> None:
    """SIGTERM to this process when its parent thread ends (Linux only; else nothing)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


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


def stop_group_if_orphaned(stopping: threading.Event, parent: int) -> None:
    """When the server died: SIGTERM to the group, then SIGKILL after the grace period.

    A stop asked by a live server needs nothing from here: the server signals the group
    itself (and kills it after its own grace period).
    """
    # Woken by every SIGTERM: the server's own stop, and the kernel's, which comes once per
    # thread of the dying server, the first of them while it is still this one's parent.
    while True:
        stopping.wait()
        if os.getppid() != parent:
            break
        stopping.clear()
        threading.Event().wait(0.05)  # the rest of the server may be dying right now
        if os.getppid() != parent:
            break
    group = os.getpgrp()
    _signal_group(group, signal.SIGTERM)
    threading.Event().wait(KILL_GRACE_SECONDS)
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
    die_with_parent()
    status_fd, command = int(argv[0]), argv[2:]
    if os.getppid() != parent:  # the server died before the request took effect
        report(status_fd, "error 0 the server stopped")
        sys.exit(1)
    stopping = threading.Event()
    # Ignored by the supervisor itself: it passes the stop on and outlives the program.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda *_: stopping.set())
    child = start(command, status_fd)
    if child is None:
        sys.exit(1)
    watcher = threading.Thread(target=stop_group_if_orphaned, args=(stopping, parent), daemon=True)
    watcher.start()
    returncode = child.wait()
    if stopping.is_set() and os.getppid() != parent:
        watcher.join()  # orphaned: the whole group goes before the supervisor does
    exit_as(returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
