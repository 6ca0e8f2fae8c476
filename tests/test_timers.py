"""The APScheduler adapter: every due time reaches us, and bursts do not freeze the loop."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from gql_scheduler.domain.actions import HandlerAction
from gql_scheduler.domain.jobs import Job, JobSpec, JobState
from gql_scheduler.domain.schedules import IntervalSchedule, OnceSchedule, Schedule
from gql_scheduler.scheduling.timers import DUE_SLICE, Timers

pytestmark = pytest.mark.asyncio


def job(job_id: str, schedule: Schedule, now: datetime) -> Job:
    spec = JobSpec(name=job_id, schedules=(schedule,), action=HandlerAction("noop"))
    return Job(
        id=job_id, spec=spec, state=JobState.ACTIVE, created_at=now, updated_at=now, watermark=now
    )


async def test_a_burst_is_delivered_in_slices_with_the_loop_free_between() -> None:
    """Without slicing, APScheduler hands all due jobs over in one loop iteration."""
    burst = 5 * DUE_SLICE
    iteration = 0
    fired_in: collections.Counter[int] = collections.Counter()
    done = asyncio.Event()

    def on_fire(_job_id: str, _at: datetime) -> None:
        fired_in[iteration] += 1
        if sum(fired_in.values()) == burst:
            done.set()

    async def count_iterations() -> None:
        nonlocal iteration
        while True:
            iteration += 1
            await asyncio.sleep(0)

    now = datetime.now(UTC)
    at = now + timedelta(seconds=0.3)
    timers = Timers(on_fire)
    for index in range(burst):
        timers.arm(job(f"j{index}", OnceSchedule(at), now))
    ticker = asyncio.create_task(count_iterations())
    timers.start()
    try:
        async with asyncio.timeout(10):
            await done.wait()
    finally:
        timers.stop()
        ticker.cancel()
    assert max(fired_in.values()) <= DUE_SLICE
    assert len(fired_in) >= burst // DUE_SLICE


async def test_late_fire_times_are_all_delivered_with_their_nominal_instant() -> None:
    """The loop was blocked past several due times: none is dropped or merged."""
    fired: list[datetime] = []
    six_fired = asyncio.Event()

    def on_fire(_job_id: str, at: datetime) -> None:
        fired.append(at)
        if len(fired) >= 6:
            six_fired.set()

    now = datetime.now(UTC)
    anchor = now + timedelta(seconds=0.1)
    timers = Timers(on_fire)
    timers.arm(job("tick", IntervalSchedule(0.1, anchor), now))
    timers.start()
    try:
        await asyncio.sleep(0)  # the scheduler's first pass runs, then the loop is held
        blocked_until = datetime.now(UTC) + timedelta(seconds=0.55)
        while datetime.now(UTC) < blocked_until:  # block the loop on purpose
            pass
        async with asyncio.timeout(10):
            await six_fired.wait()
    finally:
        timers.stop()
    expected = [anchor + timedelta(seconds=0.1 * k) for k in range(6)]
    assert fired[:6] == expected


async def test_jobs_armed_at_start_in_one_load_fire_in_time_order() -> None:
    fired: list[str] = []
    all_fired = asyncio.Event()

    def on_fire(job_id: str, _at: datetime) -> None:
        fired.append(job_id)
        if len(fired) == 3:
            all_fired.set()

    now = datetime.now(UTC)
    timers = Timers(on_fire)
    # Armed out of order; one has no run left and gets no timer.
    offsets = {"c": 0.3, "a": 0.1, "b": 0.2}
    jobs = [job(name, OnceSchedule(now + timedelta(seconds=s)), now) for name, s in offsets.items()]
    jobs.append(job("gone", OnceSchedule(now - timedelta(seconds=1)), now))
    timers.arm_all(jobs)
    assert timers.armed_ids() == {"a", "b", "c"}
    timers.start()
    try:
        async with asyncio.timeout(5):
            await all_fired.wait()
    finally:
        timers.stop()
    assert fired == ["a", "b", "c"]


async def test_a_due_slice_is_handed_over_in_one_pass_every_time_in_order() -> None:
    """SlicedJobStore.fire_due: DUE_SLICE jobs per pass, each with all its due times (none
    dropped, none merged), and the store kept in order by next time afterwards."""
    now = datetime.now(UTC)
    # Each fired last 3 s ago: three occurrences are due now.
    late = [
        dataclasses.replace(
            job(f"late-{index:04d}", IntervalSchedule(1.0, now - timedelta(seconds=2.5)), now),
            watermark=now - timedelta(seconds=3),
        )
        for index in range(2 * DUE_SLICE + 7)
    ]
    once = job("once", OnceSchedule(now - timedelta(seconds=0.5)), now - timedelta(seconds=1))
    timers = Timers(lambda _job_id, _at: None)
    timers.arm_all([*late, once])
    store = timers._store  # the unit under test, as the scheduler uses it
    fired: list[tuple[str, datetime]] = []
    passes = []
    while store.get_next_run_time() <= now:
        before = len(fired)
        store.fire_due(now, lambda job_id, at: fired.append((job_id, at)))
        passes.append({job_id for job_id, _ in fired[before:]})
        entries = store._jobs
        assert entries == sorted(entries, key=lambda entry: (entry[1], entry[0].id))
        assert store._jobs_index == {entry[0].id: entry for entry in entries}
    assert [len(ids) for ids in passes] == [DUE_SLICE, DUE_SLICE, 8]
    anchor = now - timedelta(seconds=2.5)
    expected = [anchor + timedelta(seconds=k) for k in range(3)]
    for item in late:
        assert [at for job_id, at in fired if job_id == item.id] == expected
    assert [at for job_id, at in fired if job_id == "once"] == [now - timedelta(seconds=0.5)]
    assert store.lookup_job("once") is None  # no run left: no timer
    assert {entry[0].next_run_time for entry in store._jobs} == {anchor + timedelta(seconds=3)}


async def test_timer_wake_ups_stay_on_the_loop() -> None:
    """AsyncIOScheduler's own timer goes through call_soon_threadsafe (a self-pipe write and
    one more loop pass) on every wake-up; ours runs the pass directly."""
    loop = asyncio.get_running_loop()
    threadsafe_calls = 0
    call_soon_threadsafe = loop.call_soon_threadsafe

    def counting(*args: object, **kwargs: object) -> asyncio.Handle:
        nonlocal threadsafe_calls
        threadsafe_calls += 1
        return call_soon_threadsafe(*args, **kwargs)  # type: ignore[arg-type]

    fired: list[str] = []
    all_fired = asyncio.Event()

    def on_fire(job_id: str, _at: datetime) -> None:
        fired.append(job_id)
        if len(fired) == 10:
            all_fired.set()

    now = datetime.now(UTC)
    timers = Timers(on_fire)
    timers.arm_all(
        [
            job(f"j{index}", OnceSchedule(now + timedelta(seconds=0.05 + index / 100)), now)
            for index in range(10)
        ]
    )
    timers.start()
    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        async with asyncio.timeout(10):
            await all_fired.wait()
    finally:
        loop.call_soon_threadsafe = call_soon_threadsafe  # type: ignore[method-assign]
        timers.stop()
    assert len(fired) == 10
    assert threadsafe_calls == 0
