"""Python callables that jobs run by name ("handler" actions), and the registry that holds them.

A handler takes `(args, context)` and returns the execution's output: None for no output, a
string as-is, anything else as sorted JSON. Async handlers run on the event loop; sync ones
run in a worker thread so that they never block it (invariant 7). Plugins add handlers
through the `gql_scheduler.handlers` entry-point group.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

from gql_scheduler.domain.errors import InvalidInput, SchedulerError, UserInputError

ENTRY_POINT_GROUP = "gql_scheduler.handlers"
HANDLER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")
MAX_SLEEP_SECONDS = 86_400

logger = logging.getLogger("gql_scheduler.handlers")


@dataclass(frozen=True)
class HandlerContext:
    """What a handler knows about the run that called it."""

    job_id: str
    job_name: str
    execution_id: str
    scheduled_for: datetime
    attempt: int


Handler = Callable[[Any, HandlerContext], Any | Awaitable[Any]]
ArgsValidator = Callable[[Any], list[UserInputError]]


class HandlerFailed(SchedulerError):
    """The handler failed."""


@dataclass(frozen=True)
class _Registration:
    func: Handler
    validate_args: ArgsValidator | None


class HandlerRegistry:
    """Handlers by name; implements the domain's `HandlerCatalog` for action validation."""

    def __init__(self) -> None:
        self._handlers: dict[str, _Registration] = {}

    @classmethod
    def with_builtins(cls) -> HandlerRegistry:
        registry = cls()
        registry.register("noop", _noop)
        registry.register("echo", _echo)
        registry.register("sleep", _sleep, validate_args=_validate_sleep_args)
        registry.register("fail", _fail, validate_args=_validate_fail_args)
        return registry

    @classmethod
    def load(cls) -> HandlerRegistry:
        """The built-ins plus every installed plugin; a broken plugin is logged and skipped."""
        registry = cls.with_builtins()
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            registry._register_plugin(entry_point)
        return registry

    def register(
        self, name: str, func: Handler, *, validate_args: ArgsValidator | None = None
    ) -> None:
        if not HANDLER_NAME.fullmatch(name):
            raise ValueError(f"invalid handler name {name!r}: must match {HANDLER_NAME.pattern}")
        if name in self._handlers:
            raise ValueError(f"a handler named {name!r} is already registered")
        if not callable(func):
            raise TypeError(f"handler {name!r} is not callable: {func!r}")
        if validate_args is not None and not callable(validate_args):
            raise TypeError(f"validate_args of handler {name!r} is not callable")
        self._handlers[name] = _Registration(func, validate_args)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._handlers))

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def validate_args(self, name: str, args: Any) -> list[UserInputError]:
        """Problems in `args`, with paths relative to the args. Raises KeyError if unknown."""
        validator = self._get(name).validate_args
        return validator(args) if validator is not None else []

    async def run(self, name: str, args: Any, context: HandlerContext) -> str | None:
        """Run handler `name` and return its output text; raises whatever the handler raises.

        Args are checked again here: a job stored earlier may predate a plugin's new rules.
        """
        problems = self.validate_args(name, args)
        if problems:
            details = "; ".join(_describe(problem) for problem in problems)
            raise HandlerFailed(f"invalid args for handler {name!r}: {details}")
        result = await _call(self._get(name).func, args, context)
        return _output_text(name, result)

    def _get(self, name: str) -> _Registration:
        try:
            return self._handlers[name]
        except KeyError:
            raise KeyError(f"unknown handler {name!r}") from None

    def _register_plugin(self, entry_point: EntryPoint) -> None:
        failure = {"action": "handler_plugin_failed", "entry_point": entry_point.name}
        try:
            plugin = entry_point.load()
        except Exception:
            # A broken plugin must not stop the scheduler from starting.
            logger.warning(
                "skipped handler plugin %r (%s): it failed to load",
                entry_point.name,
                entry_point.value,
                exc_info=True,
                extra=failure,
            )
            return
        try:
            self.register(
                entry_point.name, plugin, validate_args=getattr(plugin, "validate_args", None)
            )
        except (ValueError, TypeError) as error:
            logger.warning(
                "skipped handler plugin %r (%s): %s",
                entry_point.name,
                entry_point.value,
                error,
                extra=failure,
            )


async def _call(func: Handler, args: Any, context: HandlerContext) -> Any:
    if _is_async(func):
        return await cast(Callable[[Any, HandlerContext], Awaitable[Any]], func)(args, context)
    result = await asyncio.to_thread(func, args, context)
    # A sync callable may still hand back an awaitable (a lambda wrapping a coroutine).
    if inspect.isawaitable(result):
        result = await result
    return result


def _is_async(func: Handler) -> bool:
    # iscoroutinefunction misses objects whose __call__ is async, so look at that as well.
    call = getattr(func, "__call__", None)  # noqa: B004 -- the method itself is wanted
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call)


def _output_text(name: str, result: Any) -> str | None:
    if result is None or isinstance(result, str):
        return result
    try:
        return json.dumps(result, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise HandlerFailed(
            f"handler {name!r} returned {type(result).__name__}, which is not JSON: {error}"
        ) from error


def _describe(problem: UserInputError) -> str:
    path = ".".join(problem.field or ())
    return f"{path}: {problem.message}" if path else problem.message


# ---------------------------------------------------------------- built-in handlers


async def _noop(args: Any, context: HandlerContext) -> None:
    return None


async def _echo(args: Any, context: HandlerContext) -> str:
    # Dumped here rather than returned as-is so that a string argument also comes out as
    # JSON: echo's output is always the JSON of its args.
    return json.dumps(args, sort_keys=True)


async def _sleep(args: Any, context: HandlerContext) -> None:
    # asyncio.sleep rather than time.sleep in a thread: cancelling the run stops it at once.
    await asyncio.sleep(float(args["seconds"]))


async def _fail(args: Any, context: HandlerContext) -> None:
    message = args.get("message") if isinstance(args, dict) else None
    raise HandlerFailed(message or "handler 'fail' failed")


def _validate_sleep_args(args: Any) -> list[UserInputError]:
    if not isinstance(args, dict):
        return [InvalidInput('args must be an object like {"seconds": 5}', field=[])]
    problems = _unknown_keys(args, allowed=("seconds",))
    if "seconds" not in args:
        problems.append(InvalidInput("seconds is required", field=["seconds"]))
        return problems
    seconds = args["seconds"]
    # bool is an int subclass, and NaN passes every range check, so exclude both explicitly.
    is_number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if not is_number or not math.isfinite(seconds) or not 0 <= seconds <= MAX_SLEEP_SECONDS:
        message = f"seconds must be a number from 0 to {MAX_SLEEP_SECONDS}"
        problems.append(InvalidInput(message, field=["seconds"]))
    return problems


def _validate_fail_args(args: Any) -> list[UserInputError]:
    if args is None:
        return []
    if not isinstance(args, dict):
        return [InvalidInput('args must be an object like {"message": "..."}', field=[])]
    problems = _unknown_keys(args, allowed=("message",))
    message = args.get("message")
    if message is not None and not isinstance(message, str):
        problems.append(InvalidInput("message must be a string", field=["message"]))
    return problems


def _unknown_keys(args: dict[Any, Any], *, allowed: Iterable[str]) -> list[UserInputError]:
    # Refusing unknown keys catches typos such as {"second": 5} at create time.
    allowed_keys = set(allowed)
    return [
        InvalidInput(f"unknown argument {key!r}", field=[str(key)])
        for key in args
        if key not in allowed_keys
    ]
