"""The APScheduler adapter: every due time reaches us, and bursts do not freeze the loop."""

from __future__ import annotations

import asyncio
import collections
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
    now = datetime.now(UTC)
    anchor = now + timedelta(seconds=0.1)
    timers = Timers(lambda _job_id, at: fired.append(at))
    timers.arm(job("tick", IntervalSchedule(0.1, anchor), now))
    timers.start()
    try:
        await asyncio.sleep(0.05)
        blocked_until = datetime.now(UTC) + timedelta(seconds=0.55)
        while datetime.now(UTC) < blocked_until:  # block the loop on purpose
            pass
        await asyncio.sleep(0.2)
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
