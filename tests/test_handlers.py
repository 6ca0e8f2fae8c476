"""The handler registry: built-ins, how handlers run, arg validation and entry-point plugins."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gql_scheduler.actions.registry import (
    ENTRY_POINT_GROUP,
    HandlerContext,
    HandlerFailed,
    HandlerRegistry,
)
from gql_scheduler.domain.actions import HandlerAction, validate_action
from gql_scheduler.domain.errors import InvalidInput, SchedulerError, UserInputError

CONTEXT = HandlerContext(
    job_id="job-1",
    job_name="nightly",
    execution_id="exec-1",
    scheduled_for=datetime(2025, 1, 1, 3, 0, tzinfo=UTC),
    attempt=2,
)


@pytest.fixture
def registry() -> HandlerRegistry:
    return HandlerRegistry.with_builtins()


def fields(errors: list[UserInputError]) -> list[tuple[str, ...]]:
    return [error.field or () for error in errors]


# ---------------------------------------------------------------- built-ins


def test_builtin_names(registry: HandlerRegistry) -> None:
    assert registry.names() == ("echo", "fail", "noop", "sleep")


async def test_noop_has_no_output(registry: HandlerRegistry) -> None:
    assert await registry.run("noop", {"ignored": True}, CONTEXT) is None


@pytest.mark.parametrize(
    ("args", "output"),
    [
        ({"b": 1, "a": [1, 2]}, '{"a": [1, 2], "b": 1}'),
        ("hi", '"hi"'),
        (None, "null"),
        (3.5, "3.5"),
    ],
)
async def test_echo_outputs_the_json_of_its_args(
    registry: HandlerRegistry, args: Any, output: str
) -> None:
    assert await registry.run("echo", args, CONTEXT) == output


async def test_sleep_really_awaits_without_blocking_the_loop(registry: HandlerRegistry) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sleeper = asyncio.create_task(registry.run("sleep", {"seconds": 0.05}, CONTEXT))
    await asyncio.sleep(0)  # the handler starts, and gives the loop back at once
    assert not sleeper.done()  # the loop ran this test while the handler slept
    assert await sleeper is None
    assert loop.time() - started >= 0.05


async def test_sleep_is_cancellable(registry: HandlerRegistry) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sleeper = asyncio.create_task(registry.run("sleep", {"seconds": 3600}, CONTEXT))
    await asyncio.sleep(0)  # the handler starts and is asleep when cancelled
    assert not sleeper.done()
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert loop.time() - started < 5


async def test_fail_raises_handler_failed_with_its_message(registry: HandlerRegistry) -> None:
    with pytest.raises(HandlerFailed) as raised:
        await registry.run("fail", {"message": "disk full"}, CONTEXT)
    assert raised.value.message == "disk full"
    assert isinstance(raised.value, SchedulerError)


@pytest.mark.parametrize("args", [None, {}, {"message": None}, {"message": ""}])
async def test_fail_has_a_default_message(registry: HandlerRegistry, args: Any) -> None:
    with pytest.raises(HandlerFailed, match=r"^handler 'fail' failed$"):
        await registry.run("fail", args, CONTEXT)


# ---------------------------------------------------------------- running handlers


async def test_sync_handler_runs_in_a_worker_thread() -> None:
    seen: list[threading.Thread] = []

    def blocking(args: Any, context: HandlerContext) -> str:
        seen.append(threading.current_thread())
        return "done"

    registry = HandlerRegistry()
    registry.register("blocking", blocking)
    assert await registry.run("blocking", None, CONTEXT) == "done"
    assert seen[0] is not threading.current_thread()


async def test_async_handlers_run_on_the_loop_thread_including_async_call_objects() -> None:
    seen: list[threading.Thread] = []

    async def coroutine_function(args: Any, context: HandlerContext) -> str:
        seen.append(threading.current_thread())
        return "function"

    class AsyncCallable:
        async def __call__(self, args: Any, context: HandlerContext) -> str:
            seen.append(threading.current_thread())
            return "object"

    registry = HandlerRegistry()
    registry.register("function", coroutine_function)
    registry.register("object", AsyncCallable())
    assert await registry.run("function", None, CONTEXT) == "function"
    assert await registry.run("object", None, CONTEXT) == "object"
    assert seen == [threading.current_thread()] * 2


async def test_an_awaitable_returned_by_a_sync_callable_is_awaited() -> None:
    async def later() -> str:
        return "awaited"

    registry = HandlerRegistry()
    registry.register("lazy", lambda args, context: later())
    assert await registry.run("lazy", None, CONTEXT) == "awaited"


async def test_handler_receives_args_and_context() -> None:
    received: list[tuple[Any, HandlerContext]] = []

    async def spy(args: Any, context: HandlerContext) -> None:
        received.append((args, context))

    registry = HandlerRegistry()
    registry.register("spy", spy)
    await registry.run("spy", {"x": 1}, CONTEXT)
    assert received == [({"x": 1}, CONTEXT)]


@pytest.mark.parametrize(
    ("result", "output"),
    [
        (None, None),
        ("plain text", "plain text"),
        ("", ""),
        ({"z": 1, "a": {"d": 2, "c": 3}}, '{"a": {"c": 3, "d": 2}, "z": 1}'),
        ([1, "two"], '[1, "two"]'),
        (42, "42"),
        (True, "true"),
    ],
)
async def test_return_value_becomes_output_text(result: Any, output: str | None) -> None:
    registry = HandlerRegistry()
    registry.register("give", lambda args, context: result)
    assert await registry.run("give", None, CONTEXT) == output


async def test_a_non_json_return_value_fails_cleanly() -> None:
    registry = HandlerRegistry()
    registry.register("bad", lambda args, context: object())
    with pytest.raises(HandlerFailed, match="returned object, which is not JSON"):
        await registry.run("bad", None, CONTEXT)


async def test_whatever_the_handler_raises_propagates() -> None:
    def broken(args: Any, context: HandlerContext) -> None:
        raise LookupError("no such row")

    registry = HandlerRegistry()
    registry.register("broken", broken)
    with pytest.raises(LookupError, match="no such row"):
        await registry.run("broken", None, CONTEXT)


async def test_run_refuses_invalid_args_before_calling_the_handler(
    registry: HandlerRegistry,
) -> None:
    with pytest.raises(HandlerFailed, match=r"invalid args for handler 'sleep': seconds: "):
        await registry.run("sleep", {"seconds": -1}, CONTEXT)


async def test_run_unknown_handler_is_a_key_error(registry: HandlerRegistry) -> None:
    with pytest.raises(KeyError, match="unknown handler 'missing'"):
        await registry.run("missing", None, CONTEXT)


# ---------------------------------------------------------------- registration and validation


@pytest.mark.parametrize("name", ["", "1abc", "has space", "a/b", "-x", "é"])
def test_register_refuses_invalid_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid handler name"):
        HandlerRegistry().register(name, lambda args, context: None)


@pytest.mark.parametrize("name", ["_x", "reports.daily", "ns:job-1", "A9"])
def test_register_accepts_valid_names(name: str) -> None:
    registry = HandlerRegistry()
    registry.register(name, lambda args, context: None)
    assert registry.names() == (name,)


def test_register_refuses_a_taken_name(registry: HandlerRegistry) -> None:
    with pytest.raises(ValueError, match="'echo' is already registered"):
        registry.register("echo", lambda args, context: None)


def test_register_refuses_non_callables() -> None:
    with pytest.raises(TypeError, match="not callable"):
        HandlerRegistry().register("x", "not a function")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("sleep", {"seconds": 5}, []),
        ("sleep", [5], [()]),
        ("sleep", {"seconds": "5"}, [("seconds",)]),
        ("sleep", {"seconds": 1, "extra": 1}, [("extra",)]),
        ("fail", {"message": 1}, [("message",)]),
        ("echo", object(), []),
        ("noop", "anything", []),
    ],
)
def test_builtin_arg_validation_paths(
    registry: HandlerRegistry, name: str, args: Any, expected: list[tuple[str, ...]]
) -> None:
    assert fields(registry.validate_args(name, args)) == expected


def test_custom_validator_is_used_and_prefixed_by_the_domain() -> None:
    def needs_city(args: Any) -> list[UserInputError]:
        if isinstance(args, dict) and isinstance(args.get("city"), str):
            return []
        return [InvalidInput("city is required", field=["city"])]

    registry = HandlerRegistry()
    registry.register("weather", lambda args, context: None, validate_args=needs_city)
    assert registry.validate_args("weather", {"city": "Oslo"}) == []
    errors = validate_action(
        HandlerAction("weather", {}), shell_enabled=False, email_enabled=False, handlers=registry
    )
    assert fields(errors) == [("handler", "args", "city")]


def test_validate_args_of_an_unknown_handler_is_a_key_error(registry: HandlerRegistry) -> None:
    with pytest.raises(KeyError):
        registry.validate_args("missing", None)


# ---------------------------------------------------------------- entry-point plugins

InstallPlugin = Callable[[dict[str, str], dict[str, str]], None]


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InstallPlugin]:
    """Write modules plus a `*.dist-info` declaring entry points, importable from tmp_path.

    Modules are named by the test and removed from sys.modules afterwards, so no test
    sees another's imports.
    """
    imported: list[str] = []

    def install(modules: dict[str, str], handlers: dict[str, str]) -> None:
        dist = f"plugin_{uuid.uuid4().hex[:8]}"
        for module, source in modules.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            imported.append(module)
        dist_info = tmp_path / f"{dist}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{n} = {t}" for n, t in handlers.items())]
        (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        importlib.invalidate_caches()

    yield install
    for module in imported:
        sys.modules.pop(module, None)


GOOD_PLUGIN = """
    from gql_scheduler.domain.errors import InvalidInput

    def greet(args, context):
        return {"hello": args["name"], "job": context.job_name}

    def _validate_greet(args):
        if isinstance(args, dict) and isinstance(args.get("name"), str):
            return []
        return [InvalidInput("name is required", field=["name"])]

    greet.validate_args = _validate_greet

    class Shout:
        async def __call__(self, args, context):
            return args.upper()

    shout = Shout()
"""


async def test_load_finds_and_runs_entry_point_plugins(install_plugin: InstallPlugin) -> None:
    install_plugin(
        {"greeting_plugin": GOOD_PLUGIN},
        {"greet": "greeting_plugin:greet", "shout": "greeting_plugin:shout"},
    )
    registry = HandlerRegistry.load()
    assert {"echo", "fail", "noop", "sleep", "greet", "shout"} <= set(registry.names())
    output = await registry.run("greet", {"name": "Ada"}, CONTEXT)
    assert output == '{"hello": "Ada", "job": "nightly"}'
    assert await registry.run("shout", "hi", CONTEXT) == "HI"
    assert fields(registry.validate_args("greet", {})) == [("name",)]
    assert registry.validate_args("shout", None) == []


async def test_broken_and_clashing_plugins_are_skipped_and_logged(
    install_plugin: InstallPlugin, caplog: pytest.LogCaptureFixture
) -> None:
    install_plugin(
        {
            "greeting_plugin": GOOD_PLUGIN,
            "exploding_plugin": "raise RuntimeError('cannot import me')\n",
        },
        {
            "broken": "exploding_plugin:handler",
            "missing": "greeting_plugin:no_such_attribute",
            "echo": "greeting_plugin:greet",
            "greet": "greeting_plugin:greet",
        },
    )
    caplog.set_level(logging.WARNING, logger="gql_scheduler.handlers")
    registry = HandlerRegistry.load()

    failed = {
        record.entry_point: record
        for record in caplog.records
        if getattr(record, "action", None) == "handler_plugin_failed"
    }
    assert set(failed) == {"broken", "missing", "echo"}
    assert str(failed["broken"].exc_info[1]) == "cannot import me"  # type: ignore[index]
    assert "already registered" in failed["echo"].getMessage()
    assert all(record.levelno == logging.WARNING for record in failed.values())
    # The built-in echo survived the clash and the good plugin still loaded.
    assert await registry.run("echo", "x", CONTEXT) == '"x"'
    assert {"broken", "missing"}.isdisjoint(registry.names())
    assert "greet" in registry.names()
