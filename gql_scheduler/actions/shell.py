"""Shell actions: run a program (argv, never through a shell) in its own process group.

The program runs under a small supervisor (shell_supervisor.py) that leads a session and
process group of its own, so that stopping a run (timeout or cancel) can signal everything
it started, grandchildren included: SIGTERM to the group, a grace period, then SIGKILL. The
supervisor also takes the group down when the server dies, even by kill -9. Output is read
line by line from both pipes at once and written as it arrives, which is what live output
shows.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from gql_scheduler.actions.base import ActionResult, OutputSink, OutputStream, RunContext
from gql_scheduler.domain.actions import ShellAction

DEFAULT_KILL_GRACE_SECONDS = 5.0
# The only variables a job inherits from the server. The server's environment holds its own
# secrets (database URL, SMTP password, API keys): passing it on wholesale would hand them to
# every job, so a job gets a minimal base and whatever its action sets explicitly.
INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "TZ")
_POLL_SECONDS = 0.05
# After the group is dead its pipes reach EOF at once; this only bounds the wait for the
# last output when a process escaped the group (setsid) while keeping a pipe open.
_DRAIN_SECONDS = 1.0
SUPERVISOR = Path(__file__).with_name("shell_supervisor.py")


def child_environment(action_env: Mapping[str, str] | None) -> dict[str, str]:
    environment = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
    environment.setdefault("PATH", os.defpath)
    environment.update(action_env or {})
    return environment


class ShellRunner:
    def __init__(self, *, kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS) -> None:
        self._kill_grace_seconds = kill_grace_seconds
        # Stop sequences that outlived a second cancel of their run: see _stop_despite_cancellation.
        self._stopping: set[asyncio.Task[None]] = set()

    async def run(
        self, action: ShellAction, context: RunContext, output: OutputSink
    ) -> ActionResult:
        try:
            process = await _start_supervised(action)
        except OSError as error:
            return ActionResult(succeeded=False, error=describe_start_error(error, action))
        # Not cancelled with this task: if the run is stopped, the output printed while the
        # group shuts down (a SIGTERM handler's last words) is still collected.
        pump = asyncio.ensure_future(_pump(process, output))
        try:
            await asyncio.wait([pump])
            pump.result()  # re-raises a failure of the sink
            returncode = await process.wait()
        except BaseException:
            await self._stop_despite_cancellation(self._stop(process, pump))
            raise
        return exit_result(returncode)

    async def aclose(self) -> None:
        """Waits for stop sequences still running in the background (server shutdown)."""
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    async def _stop_despite_cancellation(self, stop: Coroutine[Any, Any, None]) -> None:
        # Shielded: a second cancel while the group is being killed must not leave processes
        # behind; the stop sequence then finishes in the background, kept in self._stopping.
        task = asyncio.ensure_future(stop)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        await asyncio.shield(task)

    async def _stop(self, process: asyncio.subprocess.Process, pump: asyncio.Future[None]) -> None:
        """Terminates the whole group, reaps the child and finishes (or drops) the output."""
        group = process.pid  # start_new_session: the child leads a group with its own pid
        if _signal_group(group, signal.SIGTERM):
            await self._wait_for_group_exit(process, group)
            if _group_alive(group):
                _signal_group(group, signal.SIGKILL)
        await process.wait()
        await asyncio.wait([pump], timeout=_DRAIN_SECONDS)
        if not pump.done():
            pump.cancel()
            await asyncio.wait([pump])
            _close_pipes(process)
        if not pump.cancelled():
            pump.exception()  # retrieved: the error that matters is the one being raised

    async def _wait_for_group_exit(self, process: asyncio.subprocess.Process, group: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._kill_grace_seconds
        while loop.time() < deadline:
            if process.returncode is not None and not _group_alive(group):
                return
            await asyncio.sleep(_POLL_SECONDS)


async def _start_supervised(action: ShellAction) -> asyncio.subprocess.Process:
    """The supervisor, once it says the program started; the program's start error else."""
    status_read, status_write = os.pipe()
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",  # the standard library only: nothing of the job's environment
                str(SUPERVISOR),
                str(status_write),
                "--",
                *action.command,
                env=child_environment(action.env),
                cwd=action.working_directory,
                # The server's own stdin is no business of a job's.
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=(status_write,),
            )
        finally:
            os.close(status_write)
        status = await asyncio.to_thread(_read_status, status_read)
    finally:
        os.close(status_read)
    if status != "started":
        await process.wait()
        raise _start_error(status)
    return process


def _read_status(fd: int) -> str:
    """The supervisor's one line (blocking: run in a thread); empty if it died first."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


def _start_error(status: str) -> OSError:
    _, _, detail = status.partition(" ")
    number, _, filename = detail.partition(" ")
    if not number.isdigit():
        return OSError(errno.EIO, "the shell supervisor did not start")
    return OSError(int(number), os.strerror(int(number)), filename or None)


def exit_result(returncode: int) -> ActionResult:
    if returncode == 0:
        return ActionResult(succeeded=True, result_code=0)
    if returncode < 0:
        number = -returncode
        try:
            name = f" ({signal.Signals(number).name})"
        except ValueError:
            name = ""
        return ActionResult(
            succeeded=False, result_code=returncode, error=f"killed by signal {number}{name}"
        )
    return ActionResult(succeeded=False, result_code=returncode, error=f"exit code {returncode}")


def describe_start_error(error: OSError, action: ShellAction) -> str:
    program = action.command[0] if action.command else ""
    directory = action.working_directory
    # subprocess names the working directory as the error's filename when chdir failed.
    if directory is not None and error.filename == directory:
        if isinstance(error, FileNotFoundError):
            return f"working directory not found: {directory}"
        return f"cannot use working directory {directory}: {error.strerror or error}"
    if isinstance(error, FileNotFoundError):
        return f"command not found: {program}"
    if isinstance(error, PermissionError):
        return f"permission denied: {program}"
    return f"cannot run {program}: {error.strerror or error}"


async def _pump(process: asyncio.subprocess.Process, output: OutputSink) -> None:
    # Both were opened as PIPE.
    assert process.stdout is not None
    assert process.stderr is not None
    readers = [
        asyncio.ensure_future(_copy_lines(process.stdout, OutputStream.STDOUT, output)),
        asyncio.ensure_future(_copy_lines(process.stderr, OutputStream.STDERR, output)),
    ]
    try:
        await asyncio.gather(*readers)
    finally:
        # If one reader failed (the sink raised), the other must not go on alone.
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def _copy_lines(
    reader: asyncio.StreamReader, stream: OutputStream, output: OutputSink
) -> None:
    # Incremental: a line longer than the reader's limit comes in pieces, and a piece may end
    # inside a multi-byte character.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        try:
            data = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as end:
            text = decoder.decode(end.partial, final=True)
            if text:
                await output.write(stream, text)
            return
        except asyncio.LimitOverrunError as overrun:
            data = await reader.read(overrun.consumed)
        text = decoder.decode(data)
        if text:
            await output.write(stream, text)


def _signal_group(group: int, signal_number: int) -> bool:
    """Signals every process in the group; False if none is left."""
    try:
        os.killpg(group, signal_number)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The group id now belongs to someone else's processes: ours are gone.
        return False
    return True


def _group_alive(group: int) -> bool:
    return _signal_group(group, 0)


def _close_pipes(process: asyncio.subprocess.Process) -> None:
    # Only reached when a process left the group (setsid) but kept our pipe open. asyncio's
    # Process has no public close, and an unclosed transport would leak its pipes; the
    # private attribute has been there since asyncio began.
    transport = getattr(process, "_transport", None)
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.close()
