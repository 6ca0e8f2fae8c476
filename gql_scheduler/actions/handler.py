"""Handler actions: a registered Python callable, its returned text as the run's output.

A handler that raises HandlerFailed failed on purpose and its message is the error; any other
exception is a bug in the handler, so its traceback goes to the log as well. A sync handler
runs in a worker thread, which cancellation cannot stop: the run ends at once, the thread
finishes on its own.
"""

from __future__ import annotations

import logging

from gql_scheduler.actions.base import ActionResult, OutputSink, OutputStream, RunContext
from gql_scheduler.actions.registry import HandlerContext, HandlerFailed, HandlerRegistry
from gql_scheduler.domain.actions import HandlerAction

logger = logging.getLogger("gql_scheduler.actions")


class HandlerRunner:
    def __init__(self, registry: HandlerRegistry) -> None:
        self._registry = registry

    async def run(
        self, action: HandlerAction, context: RunContext, output: OutputSink
    ) -> ActionResult:
        # Checked first: the registry's KeyError would read like a bug in the handler.
        if action.name not in self._registry:
            return ActionResult(succeeded=False, error=f"unknown handler {action.name!r}")
        try:
            text = await self._registry.run(action.name, action.args, handler_context(context))
        except HandlerFailed as error:
            return ActionResult(succeeded=False, error=str(error) or "handler failed")
        except Exception as error:
            logger.exception(
                "handler %r raised %s",
                action.name,
                type(error).__name__,
                extra={
                    "action": "handler_raised",
                    "handler": action.name,
                    "execution_id": context.execution_id,
                },
            )
            return ActionResult(succeeded=False, error=describe_exception(error))
        # Outside the try: a failing sink is the engine's problem, not the handler's.
        if text:
            await output.write(OutputStream.STDOUT, text)
        return ActionResult(succeeded=True)


def handler_context(context: RunContext) -> HandlerContext:
    return HandlerContext(
        job_id=context.job_id,
        job_name=context.job_name,
        execution_id=context.execution_id,
        scheduled_for=context.scheduled_for,
        attempt=context.attempt,
    )


def describe_exception(error: BaseException) -> str:
    """`RuntimeError: boom`, or just the type name when the message is empty."""
    message = str(error)
    name = type(error).__name__
    return f"{name}: {message}" if message else name
