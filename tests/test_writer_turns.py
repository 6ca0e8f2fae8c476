"""SQLite's writer turns: one at a time, the engine's writers before the API's."""

from __future__ import annotations

import asyncio

import pytest

from gql_scheduler.store.writer_turns import WriterTurns
from tests.engine_helpers import poll

pytestmark = pytest.mark.timeout(10)


async def until_waiting(turns: WriterTurns, count: int) -> None:
    """Until `count` writers queue (each does on its first step), bounded."""

    async def waiting() -> int:
        return turns.waiting

    await poll(waiting, lambda seen: seen >= count, within=5)


async def test_the_engine_goes_before_api_writers_that_waited_longer() -> None:
    turns = WriterTurns()
    order: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def writer(name: str, *, urgent: bool, hold: bool = False) -> None:
        async with turns.turn(urgent=urgent):
            order.append(name)
            if hold:
                holding.set()
                await release.wait()

    first = asyncio.create_task(writer("api-1", urgent=False, hold=True))
    await holding.wait()
    waiting = [
        asyncio.create_task(writer("api-2", urgent=False)),
        asyncio.create_task(writer("api-3", urgent=False)),
        asyncio.create_task(writer("engine-1", urgent=True)),
        asyncio.create_task(writer("engine-2", urgent=True)),
    ]
    await until_waiting(turns, len(waiting))
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["api-1", "engine-1", "engine-2", "api-2", "api-3"]


async def test_one_writer_at_a_time() -> None:
    turns = WriterTurns()
    inside = 0
    most = 0

    async def writer(urgent: bool) -> None:
        nonlocal inside, most
        async with turns.turn(urgent=urgent):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(writer(i % 3 == 0) for i in range(30)))
    assert most == 1
    assert turns.waiting == 0


async def test_a_waiter_that_gives_up_leaves_no_hole() -> None:
    turns = WriterTurns()
    done: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn(urgent=False):
            await release.wait()

    async def writer(name: str) -> None:
        async with turns.turn(urgent=True):
            done.append(name)

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    quitter = asyncio.create_task(writer("quitter"))
    stayer = asyncio.create_task(writer("stayer"))
    await until_waiting(turns, 2)
    quitter.cancel()
    release.set()
    await asyncio.gather(held, stayer)
    assert done == ["stayer"]
    with pytest.raises(asyncio.CancelledError):
        await quitter
    async with turns.turn(urgent=False):  # and the turns are free again
        pass


async def test_api_writers_still_get_a_turn_when_the_engine_always_waits() -> None:
    from gql_scheduler.store.writer_turns import URGENT_IN_A_ROW

    turns = WriterTurns()
    order: list[str] = []
    engine_writes = URGENT_IN_A_ROW * 3

    async def writer(name: str, *, urgent: bool) -> None:
        async with turns.turn(urgent=urgent):
            order.append(name)
            await asyncio.sleep(0)

    async def engine() -> None:
        # Always another engine write waiting, as at hundreds of runs a second.
        await asyncio.gather(*(writer("engine", urgent=True) for _ in range(engine_writes)))

    await asyncio.gather(engine(), writer("api", urgent=False))
    assert order.index("api") <= URGENT_IN_A_ROW + 1, order
