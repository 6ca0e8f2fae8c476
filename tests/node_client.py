"""The npm graphql-ws client (what frontends use) against our server, from async tests.

`install_packages` runs `npm ci` into tests/js/node_modules (git-ignored) once, and again
only when package.json or package-lock.json change. Each client is a real Node process
running tests/js/client.mjs, which prints one JSON line per thing that happens; this side
reads them as they come (an asyncio subprocess: the event loop never waits on a pipe).
Every wait is bounded, and the process is always stopped: politely first (closing its
stdin makes it close its socket and exit), killed if it does not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "client.mjs"
INSTALL_STAMP = JS_DIR / "node_modules" / ".installed-from-sha256"  # npm ci wipes it too
MINIMUM_NODE_MAJOR = 20  # graphql-ws 6 needs it
NPM_CI_TIMEOUT = 45.0  # within the first test's 60 s (pytest-timeout counts fixture setup)
WAIT = 10.0
STOP_WAIT = 5.0
LINE_LIMIT = 16 * 1024 * 1024  # one event per line; a page of results can be long
STDERR_KEPT = 16 * 1024
KEEPALIVES = frozenset({"ping", "pong"})
# What `next_event` passes over unless asked for: the socket's way up, and keep-alives.
ROUTINE = frozenset({"connecting", "opened", "connected", *KEEPALIVES})

Event = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """One GraphQL operation the client subscribes to (queries and mutations too).

    Its events carry `id`; on the wire it is `wire_id` if set (two operations may share
    one there, to see what the server does), else `id`.
    """

    id: str
    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    wire_id: str | None = None

    def to_command(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "query": self.query,
            "variables": self.variables,
            "operationName": self.operation_name,
            "wireId": self.wire_id,
        }


def install_packages() -> NodeClientLauncher:
    """`npm ci` unless node_modules was installed from this very lockfile; fails, never skips."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "The npm graphql-ws tests need Node.js and npm on PATH "
            f"(node {MINIMUM_NODE_MAJOR} or newer); found node={node}, npm={npm}.",
            pytrace=False,
        )
    _check_node_version(node)
    fingerprint = _lockfile_fingerprint()
    if not (INSTALL_STAMP.exists() and INSTALL_STAMP.read_text() == fingerprint):
        _npm_ci(npm)
        INSTALL_STAMP.write_text(fingerprint)
    return NodeClientLauncher(node)


def _check_node_version(node: str) -> None:
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=WAIT, check=False
    ).stdout.strip()
    major = version.removeprefix("v").split(".")[0]
    if not major.isdigit() or int(major) < MINIMUM_NODE_MAJOR:
        pytest.fail(
            f"The npm graphql-ws tests need Node.js {MINIMUM_NODE_MAJOR} or newer; "
            f"{node} is {version or 'unknown'}.",
            pytrace=False,
        )


def _lockfile_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((JS_DIR / name).read_bytes())
    return digest.hexdigest()


def _npm_ci(npm: str) -> None:
    command = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
    environment = {**os.environ, "npm_config_update_notifier": "false"}
    try:
        done = subprocess.run(
            command,
            cwd=JS_DIR,
            env=environment,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"`{' '.join(command)}` in {JS_DIR} took over {NPM_CI_TIMEOUT} s", pytrace=False
        )
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` in {JS_DIR} failed ({done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-4000:]}",
            pytrace=False,
        )


class NodeClient:
    """One running client.mjs: the events it printed, and bounded waits on them.

    Events are dicts with an "event" key: connecting, opened, connected, next, error,
    complete, closed, socket_error, and ping / pong (with "received": true when the server
    sent it). `next_event` reads them in order, passing over the routine ones; tests count
    pings and pongs instead (`keepalives`).
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[Event] = []
        self._read = 0
        self._output_ended = False
        self._changed = asyncio.Condition()
        self._stderr = bytearray()
        self._readers = asyncio.gather(self._read_stdout(), self._read_stderr())

    @property
    def close_code(self) -> int | None:
        """The code of the socket's last close, None while it never closed."""
        closes = self.events_of("closed")
        return closes[-1]["code"] if closes else None

    def events_of(self, kind: str, operation_id: str | None = None) -> list[Event]:
        return [
            event
            for event in self.events
            if event["event"] == kind and (operation_id is None or event.get("id") == operation_id)
        ]

    def keepalives(self, kind: str, *, received: bool) -> int:
        """How many pings or pongs came from the server (received) or went to it."""
        return sum(1 for event in self.events_of(kind) if event["received"] is received)

    async def next_event(self, kind: str | None = None, *, within: float = WAIT) -> Event:
        """The next event not read yet, routine ones aside (the connection's way up, pings and
        pongs) unless `kind` is one of them; it must be a `kind` if given."""
        passed_over = ROUTINE - {kind}

        def unread() -> bool:
            while self._read < len(self.events) and self.events[self._read]["event"] in passed_over:
                self._read += 1
            return self._read < len(self.events)

        await self.wait_for(unread, within=within, waiting_for=f"{kind or 'new'} event")
        event = self.events[self._read]
        self._read += 1
        if kind is not None and event["event"] != kind:
            raise AssertionError(self._report(f"expected a {kind} event, got {event}"))
        return event

    async def wait_for(
        self, condition: Callable[[], bool], *, within: float = WAIT, waiting_for: str = ""
    ) -> None:
        """Until `condition()` holds, checked as each event arrives; fails if the client
        exits first or after `within` seconds."""
        what = waiting_for or getattr(condition, "__name__", "the condition")
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: condition() or self._output_ended)
        except TimeoutError:
            raise AssertionError(self._report(f"no {what} within {within} s")) from None
        if not condition():
            raise AssertionError(self._report(f"the client exited before {what}"))

    async def wait_exit(self, *, within: float = WAIT) -> int:
        """Until the client exits by itself (all operations ended, or the socket is gone)."""
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self._readers)
                return await self.process.wait()
        except TimeoutError:
            raise AssertionError(self._report(f"still running after {within} s")) from None

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # the lifeline: client.mjs disposes its client and exits
        try:
            async with asyncio.timeout(STOP_WAIT):
                await self.process.wait()
        except TimeoutError:
            with suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        await self._readers  # both pipes read to their end, so their transports close

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            try:
                event: Event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed_output", "line": line.decode(errors="replace")}
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        async with self._changed:
            self._output_ended = True
            self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self._stderr += chunk
            del self._stderr[:-STDERR_KEPT]

    def _report(self, problem: str) -> str:
        events = "\n".join(json.dumps(event) for event in self.events[-30:])
        stderr = self._stderr.decode(errors="replace")
        return (
            f"{problem}\nexit code: {self.process.returncode}\n"
            f"events (last 30):\n{events}\nstderr:\n{stderr}"
        )


class NodeClientLauncher:
    """Starts client.mjs processes; what the session fixture `node_client` gives tests."""

    def __init__(self, node: str) -> None:
        self.node = node

    @asynccontextmanager
    async def __call__(
        self,
        url: str,
        *,
        operations: Sequence[Operation] = (),
        connection_params: Any = None,
        lazy: bool = False,
        retry_attempts: int = 0,
        keep_alive_ms: int = 0,
    ) -> AsyncIterator[NodeClient]:
        command: dict[str, Any] = {
            "url": url,
            "operations": [operation.to_command() for operation in operations],
            "lazy": lazy,
            "retryAttempts": retry_attempts,
            "keepAlive": keep_alive_ms,
        }
        if connection_params is not None:
            command["connectionParams"] = connection_params
        async with asyncio.timeout(WAIT):
            process = await asyncio.create_subprocess_exec(
                self.node,
                str(SCRIPT),
                json.dumps(command),
                cwd=JS_DIR,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=LINE_LIMIT,
            )
        client = NodeClient(process)
        try:
            yield client
        finally:
            await client.stop()
