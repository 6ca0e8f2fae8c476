"""The action runners against real parts: an HTTP server, processes, handlers, an SMTP server.

Everything listens on 127.0.0.1, every wait is bounded, and each test stops what it started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_scheduler.actions import shell as shell_module
from gql_scheduler.actions.base import ActionResult, OutputStream, RunContext
from gql_scheduler.actions.email import EmailRunner, parse_smtp_url
from gql_scheduler.actions.handler import HandlerRunner
from gql_scheduler.actions.http import USER_AGENT, HttpRunner
from gql_scheduler.actions.output_collector import ChunkListener, OutputChunk, OutputCollector
from gql_scheduler.actions.registry import HandlerContext, HandlerRegistry
from gql_scheduler.actions.runners import EMAIL_DISABLED, SHELL_DISABLED, ActionRunners
from gql_scheduler.actions.shell import ShellRunner
from gql_scheduler.domain.actions import (
    EmailAction,
    HandlerAction,
    Header,
    HttpAction,
    HttpMethod,
    ShellAction,
)
from gql_scheduler.testing import FixedClock
from tests.local_servers import (
    BIG_BODY_BYTES,
    RunningHttpServer,
    RunningSmtpServer,
    closed_port,
    http_server,
    smtp_server,
)

START = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
CONTEXT = RunContext(
    execution_id="exec-1",
    job_id="job-1",
    job_name="nightly",
    scheduled_for=START,
    attempt=2,
    idempotency_key="job-1:2025-01-01T03:00:00Z",
)
LIMIT = 64 * 1024
GRACE = 0.5  # the shell runner's SIGTERM-to-SIGKILL grace in these tests
GONE_TIMEOUT = 5.0


def collector(
    limit_bytes: int = LIMIT,
    listener: ChunkListener | None = None,
) -> OutputCollector:
    return OutputCollector(limit_bytes=limit_bytes, now=FixedClock(START).now, listener=listener)


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", textwrap.dedent(code))


@pytest.fixture
async def web() -> AsyncIterator[RunningHttpServer]:
    async with http_server() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy set in the environment must not route 127.0.0.1 requests.
    timeout = httpx.Timeout(30, connect=10)
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout, trust_env=False) as c:
        yield c


@pytest.fixture
async def smtp() -> AsyncIterator[RunningSmtpServer]:
    async with smtp_server() as server:
        yield server


# ---------------------------------------------------------------- output collector


async def test_collector_keeps_chunks_in_order_with_stream_and_time() -> None:
    clock = FixedClock(START)
    output = OutputCollector(limit_bytes=LIMIT, now=clock.now)
    await output.write(OutputStream.STDOUT, "one\n")
    clock.advance(1)
    await output.write(OutputStream.STDERR, "two\n")
    await output.write(OutputStream.STDOUT, "")  # nothing to keep, no chunk
    assert [(c.seq, c.stream, c.text, c.at) for c in output.chunks] == [
        (0, OutputStream.STDOUT, "one\n", START),
        (1, OutputStream.STDERR, "two\n", datetime(2025, 1, 1, 3, 0, 1, tzinfo=UTC)),
    ]
    assert output.text() == "one\ntwo\n"
    assert not output.truncated


async def test_collector_stops_at_the_limit_and_counts_what_it_drops() -> None:
    output = collector(limit_bytes=5)
    await output.write(OutputStream.STDOUT, "abc")
    await output.write(OutputStream.STDOUT, "defg")
    await output.write(OutputStream.STDERR, "x")  # would fit in no room: dropped too
    assert [c.text for c in output.chunks] == ["abc", "de"]
    assert (output.kept_bytes, output.dropped_bytes) == (5, 3)
    assert output.text() == "abcde\n…[truncated 3 bytes]"


async def test_collector_never_splits_a_multibyte_character() -> None:
    output = collector(limit_bytes=4)
    await output.write(OutputStream.STDOUT, "aé€")  # 1 + 2 + 3 bytes
    assert output.text() == "aé\n…[truncated 3 bytes]"
    assert output.kept_bytes == 3
    # Later writes are dropped even if they would fit in the byte left over, so the kept
    # text stays a prefix of the real output.
    await output.write(OutputStream.STDOUT, "b")
    assert output.text() == "aé\n…[truncated 4 bytes]"


async def test_collector_marker_follows_a_complete_line_directly() -> None:
    output = collector(limit_bytes=3)
    await output.write(OutputStream.STDOUT, "ab\ncd")
    assert output.text() == "ab\n…[truncated 2 bytes]"


async def test_collector_passes_each_kept_chunk_to_the_listener_in_order() -> None:
    seen: list[OutputChunk] = []

    async def listener(chunk: OutputChunk) -> None:
        await asyncio.sleep(0)  # lets the other writer run while this one is inside
        seen.append(chunk)

    output = collector(limit_bytes=20, listener=listener)
    await asyncio.gather(*(output.write(OutputStream.STDOUT, f"line {n}\n") for n in range(5)))
    assert [chunk.seq for chunk in seen] == [0, 1, 2]  # 7 + 7 + 6 bytes, the rest dropped
    assert seen == list(output.chunks)
    assert output.dropped_bytes == 3 * 7 - 6


# ---------------------------------------------------------------- http


async def test_http_sends_method_headers_and_json(
    web: RunningHttpServer, client: httpx.AsyncClient
) -> None:
    action = HttpAction(
        url=web.url("/ok"),
        method=HttpMethod.PATCH,
        headers=(Header("X-Test", "yes"),),
        json={"a": 1, "b": [True, None]},
    )
    output = collector()
    result = await HttpRunner(client).run(action, CONTEXT, output)
    assert result == ActionResult(succeeded=True, result_code=200)
    assert output.text() == "ok"
    [request] = web.recorder.requests
    assert request.method == "PATCH"
    assert json.loads(request.body) == {"a": 1, "b": [True, None]}
    assert request.header_values("content-type") == ["application/json"]
    assert request.header_values("x-test") == ["yes"]
    assert request.header_values("idempotency-key") == [CONTEXT.idempotency_key]
    assert request.header_values("user-agent") == [USER_AGENT]
    assert USER_AGENT.startswith("gql-scheduler/")


async def test_http_sends_a_raw_body_and_the_users_own_headers_win(
    web: RunningHttpServer, client: httpx.AsyncClient
) -> None:
    action = HttpAction(
        url=web.url("/ok"),
        method=HttpMethod.PUT,
        headers=(
            Header("Content-Type", "text/plain"),
            Header("idempotency-KEY", "mine"),
            Header("User-Agent", "custom/1"),
        ),
        body="héllo",
    )
    result = await HttpRunner(client).run(action, CONTEXT, collector())
    assert result.succeeded
    [request] = web.recorder.requests
    assert (request.method, request.body) == ("PUT", "héllo".encode())
    assert request.header_values("idempotency-key") == ["mine"]
    assert request.header_values("user-agent") == ["custom/1"]


async def test_http_error_status_is_a_failure_with_the_status_line(
    web: RunningHttpServer, client: httpx.AsyncClient
) -> None:
    output = collector()
    action = HttpAction(url=web.url("/status/503"), method=HttpMethod.GET)
    result = await HttpRunner(client).run(action, CONTEXT, output)
    assert result == ActionResult(
        succeeded=False, result_code=503, error="HTTP 503 Service Unavailable"
    )
    assert output.text() == "status 503"


async def test_http_success_statuses_replace_any_2xx(
    web: RunningHttpServer, client: httpx.AsyncClient
) -> None:
    runner = HttpRunner(client)
    not_found = HttpAction(url=web.url("/status/404"), success_statuses=(404,))
    ok = HttpAction(url=web.url("/ok"), success_statuses=(404,))
    assert await runner.run(not_found, CONTEXT, collector()) == ActionResult(True, 404)
    assert await runner.run(ok, CONTEXT, collector()) == ActionResult(False, 200, "HTTP 200 OK")


async def test_http_connection_refused_is_a_failed_result(client: httpx.AsyncClient) -> None:
    action = HttpAction(url=f"http://127.0.0.1:{closed_port()}/", method=HttpMethod.GET)
    result = await HttpRunner(client).run(action, CONTEXT, collector())
    assert not result.succeeded
    assert result.result_code is None
    assert result.error is not None
    assert result.error.startswith("connection failed: ")
    assert "\n" not in result.error


async def test_http_read_timeout_of_the_client_is_a_failed_result(
    web: RunningHttpServer,
) -> None:
    timeout = httpx.Timeout(0.3, connect=5)
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as short:
        action = HttpAction(url=web.url("/slow"), method=HttpMethod.GET)
        result = await HttpRunner(short).run(action, CONTEXT, collector())
    assert result == ActionResult(False, None, "timed out waiting for the response")
    await asyncio.wait_for(web.recorder.slow_disconnected.wait(), 5)


async def test_http_cancel_closes_the_request_promptly(
    web: RunningHttpServer, client: httpx.AsyncClient
) -> None:
    action = HttpAction(url=web.url("/slow"), method=HttpMethod.GET)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await HttpRunner(client).run(action, CONTEXT, collector())
    assert time.monotonic() - started < 2
    # The server sees the connection go away instead of serving it for 30 s.
    await asyncio.wait_for(web.recorder.slow_disconnected.wait(), 5)


async def test_http_big_body_is_cut_at_the_limit(
    web: RunningHttpServer, client: httpx.AsyncClient
) -> None:
    output = collector(limit_bytes=1000)
    action = HttpAction(url=web.url("/big"), method=HttpMethod.GET)
    result = await HttpRunner(client, max_body_bytes=1000).run(action, CONTEXT, output)
    assert result == ActionResult(True, 200)
    assert output.kept_bytes == 1000
    assert 0 < output.dropped_bytes < BIG_BODY_BYTES  # reading stopped early
    assert output.text() == "x" * 1000 + f"\n…[truncated {output.dropped_bytes} bytes]"


# ---------------------------------------------------------------- shell


async def test_shell_streams_stdout_and_stderr_lines_in_order() -> None:
    code = """
        import sys, time
        print("one", flush=True); time.sleep(0.05)
        print("two", file=sys.stderr, flush=True); time.sleep(0.05)
        print("three", flush=True)
    """
    output = collector()
    result = await ShellRunner().run(ShellAction(python(code)), CONTEXT, output)
    assert result == ActionResult(succeeded=True, result_code=0)
    assert [(c.stream, c.text) for c in output.chunks] == [
        (OutputStream.STDOUT, "one\n"),
        (OutputStream.STDERR, "two\n"),
        (OutputStream.STDOUT, "three\n"),
    ]


async def test_shell_first_line_arrives_while_the_process_still_runs(tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = f"""
        import os, time
        print("first", flush=True)
        deadline = time.monotonic() + 10
        while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
        print("second", flush=True)
    """
    first_line = asyncio.Event()

    async def listener(chunk: OutputChunk) -> None:
        first_line.set()

    output = collector(listener=listener)
    run = asyncio.create_task(ShellRunner().run(ShellAction(python(code)), CONTEXT, output))
    await asyncio.wait_for(first_line.wait(), 10)
    assert not run.done()  # the child waits for `go`: the line came live
    go.touch()
    assert (await asyncio.wait_for(run, 10)).succeeded
    assert output.text() == "first\nsecond\n"


async def test_shell_exit_code_and_signal_are_failures() -> None:
    runner = ShellRunner()
    exited = await runner.run(ShellAction(python("raise SystemExit(3)")), CONTEXT, collector())
    assert exited == ActionResult(succeeded=False, result_code=3, error="exit code 3")
    kill_self = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    killed = await runner.run(ShellAction(python(kill_self)), CONTEXT, collector())
    assert killed == ActionResult(False, -9, "killed by signal 9 (SIGKILL)")


async def test_shell_env_is_minimal_plus_the_actions_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GQL_SCHEDULER_SECRET_PROBE", "x")
    code = "import json, os; print(json.dumps([dict(os.environ), os.getcwd()]))"
    action = ShellAction(python(code), env={"JOB_VAR": "hello"}, working_directory=str(tmp_path))
    output = collector()
    assert (await ShellRunner().run(action, CONTEXT, output)).succeeded
    environment, cwd = json.loads(output.text())
    assert environment["JOB_VAR"] == "hello"
    assert "GQL_SCHEDULER_SECRET_PROBE" not in environment
    assert environment["PATH"]
    # Python itself may add LC_CTYPE (PEP 538); nothing else of ours leaks.
    assert set(environment) - {"LC_CTYPE"} <= {"JOB_VAR", "PATH", "HOME", "LANG", "TZ"}
    assert cwd == str(tmp_path)


async def test_shell_missing_program_or_directory_is_a_clear_failure(tmp_path: Path) -> None:
    runner = ShellRunner()
    missing = await runner.run(ShellAction(("no-such-program-4711",)), CONTEXT, collector())
    assert missing == ActionResult(False, None, "command not found: no-such-program-4711")
    nowhere = str(tmp_path / "nowhere")
    action = ShellAction(python("print(1)"), working_directory=nowhere)
    bad_directory = await runner.run(action, CONTEXT, collector())
    assert bad_directory == ActionResult(False, None, f"working directory not found: {nowhere}")


async def test_shell_long_lines_and_invalid_utf8_come_through_whole() -> None:
    # 200 000 bytes with no newline: more than the pipe reader's 64 KiB line limit.
    code = """
        import sys
        sys.stdout.buffer.write("é".encode() * 100_000 + b"\\xff\\n")
    """
    output = collector(limit_bytes=1024 * 1024)
    assert (await ShellRunner().run(ShellAction(python(code)), CONTEXT, output)).succeeded
    assert output.text() == "é" * 100_000 + "\ufffd\n"


def process_gone(pid: int) -> bool:
    """True once `pid` has exited: no /proc entry, or a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    state = stat.rsplit(")", 1)[1].split()[0]  # the name in parentheses may hold spaces
    return state in ("Z", "X")


async def wait_until_gone(*pids: int) -> None:
    """Waits for every pid to exit; on failure kills the survivors so no sleeper is left."""
    interval = 0.05
    for _ in range(int(GONE_TIMEOUT / interval)):
        if all(process_gone(pid) for pid in pids):
            return
        await asyncio.sleep(interval)
    alive = [pid for pid in pids if not process_gone(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"still running after {GONE_TIMEOUT} s: {alive}")


GROUP_CODE = """
    import os, subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(os.getpid(), grandchild.pid, flush=True)
    time.sleep(60)
"""


async def test_shell_timeout_kills_the_whole_process_group() -> None:
    output = collector()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await ShellRunner(kill_grace_seconds=GRACE).run(
                ShellAction(python(GROUP_CODE)), CONTEXT, output
            )
    child, grandchild = (int(pid) for pid in output.text().split())
    await wait_until_gone(child, grandchild)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # reaped by the runner, not only dead
    # At most the grace period on top of the timeout: the grandchild, a zombie until the
    # init process reaps it, keeps the group "alive" to killpg(0) until then.
    assert time.monotonic() - started < 1 + GRACE + 1


async def test_shell_sigterm_ignored_means_sigkill_after_the_grace_period() -> None:
    code = """
        import os, signal, time
        def ignore(number, frame):
            print("ignoring SIGTERM", flush=True)
        signal.signal(signal.SIGTERM, ignore)
        print(os.getpid(), flush=True)
        time.sleep(60)
    """
    output = collector()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await ShellRunner(kill_grace_seconds=GRACE).run(
                ShellAction(python(code)), CONTEXT, output
            )
    elapsed = time.monotonic() - started
    pid = int(output.chunks[0].text)
    await wait_until_gone(pid)  # SIGKILL was sent; the kernel ends it a moment later
    assert 1 + GRACE - 0.1 < elapsed < 1 + GRACE + 2
    # What the child printed while shutting down is still collected.
    assert output.chunks[1].text == "ignoring SIGTERM\n"


async def test_shell_cancel_kills_the_group_and_propagates() -> None:
    line = asyncio.Event()

    async def listener(chunk: OutputChunk) -> None:
        line.set()

    output = collector(listener=listener)
    runner = ShellRunner(kill_grace_seconds=GRACE)
    run = asyncio.create_task(runner.run(ShellAction(python(GROUP_CODE)), CONTEXT, output))
    await asyncio.wait_for(line.wait(), 10)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 10)
    await wait_until_gone(*(int(pid) for pid in output.text().split()))
    await runner.aclose()


# ---------------------------------------------------------------- handler


async def test_handler_echo_writes_its_output() -> None:
    output = collector()
    runner = HandlerRunner(HandlerRegistry.with_builtins())
    result = await runner.run(HandlerAction("echo", {"b": 1, "a": [2]}), CONTEXT, output)
    assert result == ActionResult(succeeded=True)
    assert [(c.stream, c.text) for c in output.chunks] == [
        (OutputStream.STDOUT, '{"a": [2], "b": 1}')
    ]


async def test_handler_failures_become_failed_results(caplog: pytest.LogCaptureFixture) -> None:
    registry = HandlerRegistry.with_builtins()

    async def boom(args: Any, context: HandlerContext) -> None:
        raise RuntimeError("boom")

    registry.register("boom", boom)
    runner = HandlerRunner(registry)
    failed = await runner.run(HandlerAction("fail", {"message": "nope"}), CONTEXT, collector())
    assert failed == ActionResult(succeeded=False, error="nope")
    with caplog.at_level(logging.ERROR, logger="gql_scheduler.actions"):
        raised = await runner.run(HandlerAction("boom"), CONTEXT, collector())
    assert raised == ActionResult(succeeded=False, error="RuntimeError: boom")
    [record] = [r for r in caplog.records if getattr(r, "action", None) == "handler_raised"]
    assert record.name == "gql_scheduler.actions"
    assert record.exc_info is not None
    unknown = await runner.run(HandlerAction("missing"), CONTEXT, collector())
    assert unknown == ActionResult(succeeded=False, error="unknown handler 'missing'")


async def test_handler_sleep_is_cancelled_by_a_timeout() -> None:
    runner = HandlerRunner(HandlerRegistry.with_builtins())
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await runner.run(HandlerAction("sleep", {"seconds": 30}), CONTEXT, collector())
    assert time.monotonic() - started < 2


async def test_sync_handler_gets_the_run_context() -> None:
    registry = HandlerRegistry()

    def describe(args: Any, context: HandlerContext) -> dict[str, Any]:
        return {
            "execution": context.execution_id,
            "job": [context.job_id, context.job_name],
            "scheduled": context.scheduled_for.isoformat(),
            "attempt": context.attempt,
        }

    registry.register("describe", describe)
    output = collector()
    assert (await HandlerRunner(registry).run(HandlerAction("describe"), CONTEXT, output)).succeeded
    assert json.loads(output.text()) == {
        "execution": "exec-1",
        "job": ["job-1", "nightly"],
        "scheduled": "2025-01-01T03:00:00+00:00",
        "attempt": 2,
    }


# ---------------------------------------------------------------- email


async def test_email_reaches_the_smtp_server(smtp: RunningSmtpServer) -> None:
    output = collector()
    runner = EmailRunner(smtp.url + "?from=jobs@example.com")
    action = EmailAction(to=("a@x.com", "b@y.com"), subject="Nightly report", body="All good.")
    assert await runner.run(action, CONTEXT, output) == ActionResult(succeeded=True)
    assert output.text() == "sent to a@x.com, b@y.com"
    [mail] = smtp.recorder.messages
    assert (mail.sender, mail.recipients) == ("jobs@example.com", ["a@x.com", "b@y.com"])
    assert mail.message["Subject"] == "Nightly report"
    assert mail.message["To"] == "a@x.com, b@y.com"
    assert mail.message["From"] == "jobs@example.com"
    assert mail.message.get_content_type() == "text/plain"
    payload = mail.message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert payload.rstrip() == b"All good."  # the line ending became CRLF on the wire


async def test_email_html_body_and_default_sender(smtp: RunningSmtpServer) -> None:
    action = EmailAction(to=("a@x.com",), subject="Hi", body="<p>hi</p>", html=True)
    assert (await EmailRunner(smtp.url).run(action, CONTEXT, collector())).succeeded
    [mail] = smtp.recorder.messages
    assert mail.message["From"] == "gql-scheduler@localhost"
    assert mail.message.get_content_type() == "text/html"


async def test_email_rejected_recipients_fail_with_the_smtp_code(
    smtp: RunningSmtpServer,
) -> None:
    smtp.recorder.rejected.add("gone@x.com")
    runner = EmailRunner(smtp.url)
    all_rejected = EmailAction(to=("gone@x.com",), subject="s", body="b")
    result = await runner.run(all_rejected, CONTEXT, collector())
    assert result == ActionResult(False, None, "550 mailbox unavailable (gone@x.com)")
    assert smtp.recorder.messages == []
    # Partly rejected: sent to the others, but still a failure the job's author sees.
    output = collector()
    some_rejected = EmailAction(to=("a@x.com", "gone@x.com"), subject="s", body="b")
    result = await runner.run(some_rejected, CONTEXT, output)
    assert result == ActionResult(False, None, "550 mailbox unavailable (gone@x.com)")
    assert output.text() == "sent to a@x.com"
    assert [mail.recipients for mail in smtp.recorder.messages] == [["a@x.com"]]


async def test_email_unreachable_server_is_a_failed_result() -> None:
    runner = EmailRunner(f"smtp://127.0.0.1:{closed_port()}?timeout=5")
    action = EmailAction(to=("a@x.com",), subject="s", body="b")
    result = await runner.run(action, CONTEXT, collector())
    assert not result.succeeded
    assert result.error is not None
    assert result.error.startswith("SMTP connection failed: ")


def test_smtp_urls() -> None:
    plain = parse_smtp_url("smtp://mail.example.com")
    assert (plain.hostname, plain.port, plain.use_tls, plain.start_tls) == (
        "mail.example.com",
        25,
        False,
        False,
    )
    secure = parse_smtp_url("smtps://user%40x:p%3Ass@mail.example.com?from=me@example.com")
    assert (secure.port, secure.use_tls, secure.username, secure.password) == (
        465,
        True,
        "user@x",
        "p:ss",
    )
    assert secure.sender == "me@example.com"
    assert "p:ss" not in repr(secure)
    upgraded = parse_smtp_url("smtp+starttls://mail.example.com:2525")
    assert (upgraded.port, upgraded.use_tls, upgraded.start_tls) == (2525, False, True)
    for bad in ("http://mail.example.com", "smtp://", "smtp://host:notaport"):
        with pytest.raises(ValueError):  # noqa: PT011 -- each has its own message
            parse_smtp_url(bad)


# ---------------------------------------------------------------- dispatch


async def test_action_runners_dispatch_and_refuse_what_is_disabled(
    web: RunningHttpServer, client: httpx.AsyncClient
) -> None:
    disabled = ActionRunners.create(
        handlers=HandlerRegistry.with_builtins(),
        http_client=client,
        smtp_url=None,
        shell_enabled=False,
    )
    http = HttpAction(url=web.url("/ok"), method=HttpMethod.GET)
    assert (await disabled.run(http, CONTEXT, collector())).succeeded
    assert (await disabled.run(HandlerAction("noop"), CONTEXT, collector())).succeeded
    shell = ShellAction(python("print('hi')"))
    assert await disabled.run(shell, CONTEXT, collector()) == ActionResult(
        False, None, SHELL_DISABLED
    )
    email = EmailAction(to=("a@x.com",), subject="s", body="b")
    assert await disabled.run(email, CONTEXT, collector()) == ActionResult(
        False, None, EMAIL_DISABLED
    )
    await disabled.aclose()

    enabled = ActionRunners.create(
        handlers=HandlerRegistry.with_builtins(),
        http_client=client,
        smtp_url="smtp://127.0.0.1:25",
        shell_enabled=True,
        shell_kill_grace_seconds=GRACE,
    )
    output = collector()
    assert (await enabled.run(shell, CONTEXT, output)).succeeded
    assert output.text() == "hi\n"
    await enabled.aclose()
    with pytest.raises(ValueError, match="SMTP URL"):
        ActionRunners.create(
            handlers=HandlerRegistry(), http_client=client, smtp_url="ftp://x", shell_enabled=False
        )


def test_child_environment_keeps_only_the_safe_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin")
    monkeypatch.setenv("DATABASE_URL", "postgresql://secret")
    environment = shell_module.child_environment({"A": "1", "PATH": "/opt/bin"})
    assert environment["A"] == "1"
    assert environment["PATH"] == "/opt/bin"  # the action may override the base
    assert "DATABASE_URL" not in environment
