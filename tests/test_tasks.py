"""Background tasks stop one way: cancelled, awaited, and their failures logged."""

from __future__ import annotations

import asyncio

import pytest

from gql_scheduler.tasks import BackgroundTasks


async def test_stop_cancels_every_task_and_waits_for_its_cleanup() -> None:
    tasks = BackgroundTasks()
    cleaned: list[str] = []
    started = asyncio.Event()

    async def loop(name: str) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits must still finish
            cleaned.append(name)

    tasks.start(loop("a"), name="a")
    tasks.start(loop("b"), name="b")
    await started.wait()
    await tasks.stop()
    assert sorted(cleaned) == ["a", "b"]
    assert len(tasks) == 0


async def test_a_task_started_while_stopping_is_stopped_too() -> None:
    tasks = BackgroundTasks()
    late_cancelled = asyncio.Event()

    async def late() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            late_cancelled.set()
            raise

    async def spawns_on_exit() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            tasks.start(late(), name="late")

    tasks.start(spawns_on_exit(), name="first")
    await asyncio.sleep(0)
    await tasks.stop()
    assert late_cancelled.is_set()
    assert len(tasks) == 0


async def test_a_failed_task_is_logged_not_left_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()

    async def fails() -> None:
        raise RuntimeError("boom")

    task = tasks.start(fails(), name="doomed")
    await asyncio.gather(task, return_exceptions=True)
    (record,) = [r for r in caplog.records if getattr(r, "action", "") == "task_failed"]
    assert record.task == "doomed"  # type: ignore[attr-defined]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "boom"
    assert len(tasks) == 0
    await tasks.stop()


async def test_wait_lasts_until_every_task_ended_by_itself() -> None:
    tasks = BackgroundTasks()
    finished: list[str] = []

    async def second() -> None:
        await asyncio.sleep(0)
        finished.append("second")

    async def first() -> None:
        await asyncio.sleep(0)
        tasks.start(second(), name="second")
        finished.append("first")

    tasks.start(first(), name="first")
    async with asyncio.timeout(5):
        await tasks.wait()
    assert finished == ["first", "second"]
    assert len(tasks) == 0
