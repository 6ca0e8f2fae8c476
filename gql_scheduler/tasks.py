"""Background tasks: each component starts its own and stops them in one call.

Stopping a task means cancelling it *and* waiting until it has ended: a task that was only
cancelled may still be running (holding a connection, writing a log line) after its owner
said it stopped, and its exception then surfaces as "Task exception was never retrieved".
Every long-lived component (the app, the broker, the event feed, the engine and its
dispatcher, the websocket handler) keeps its tasks here, so that is done one way.

Standard library only: every layer may use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("gql_scheduler.tasks")

T = TypeVar("T")


class BackgroundTasks:
    """The background tasks of one component."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    def start(
        self, coroutine: Coroutine[Any, Any, T], *, name: str | None = None
    ) -> asyncio.Task[T]:
        """Run `coroutine` as a task of this component until it ends or `stop` is called."""
        task = asyncio.create_task(coroutine, name=name)
        self._running.add(task)
        task.add_done_callback(self._ended)
        return task

    def __len__(self) -> int:
        return len(self._running)

    async def wait(self) -> None:
        """Until every task has ended by itself, those started meanwhile included."""
        while self._running:
            await asyncio.wait(set(self._running))

    async def stop(self) -> None:
        """Cancel every task still running and wait until each has ended.

        What they raise on the way out is theirs to log: a stopping component only needs
        them gone. A task that cancels itself again and again is still awaited.
        """
        while self._running:
            tasks = list(self._running)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._running.difference_update(tasks)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, so asyncio never reports it unretrieved
        if error is not None:
            log.error(
                "background task %s failed",
                task.get_name(),
                exc_info=error,
                extra={"action": "task_failed", "task": task.get_name()},
            )
