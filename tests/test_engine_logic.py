"""Pure decisions of the engine, with time and randomness passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gql_scheduler.domain.misfires import MisfireOutcome, plan_misfires
from gql_scheduler.domain.overlap import OverlapDecision, decide_overlap
from gql_scheduler.domain.policies import Delivery, MisfirePolicy, OverlapPolicy, RetryPolicy
from gql_scheduler.domain.retries import retry_delay, should_retry

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempt", "expected_seconds"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 256.0), (10, 300.0), (30, 300.0)],
)
def test_backoff_doubles_and_is_capped(attempt: int, expected_seconds: float) -> None:
    policy = RetryPolicy(max_attempts=50, jitter=False)
    assert retry_delay(policy, attempt, random_unit=0.7) == timedelta(seconds=expected_seconds)


def test_full_jitter_scales_the_backoff() -> None:
    policy = RetryPolicy(initial_delay_seconds=10, backoff_factor=3, jitter=True)
    assert retry_delay(policy, 2, random_unit=0.0) == timedelta(0)
    assert retry_delay(policy, 2, random_unit=0.5) == timedelta(seconds=15)


@pytest.mark.parametrize(
    ("delivery", "attempt", "max_attempts", "expected"),
    [
        (Delivery.AT_LEAST_ONCE, 1, 3, True),
        (Delivery.AT_LEAST_ONCE, 3, 3, False),
        (Delivery.AT_LEAST_ONCE, 1, 1, False),
        (Delivery.AT_MOST_ONCE, 1, 3, False),
    ],
)
def test_should_retry(delivery: Delivery, attempt: int, max_attempts: int, expected: bool) -> None:
    policy = RetryPolicy(max_attempts=max_attempts)
    assert should_retry(policy, delivery, attempt) is expected


@pytest.mark.parametrize(
    ("policy", "running", "waiting", "force", "expected"),
    [
        (OverlapPolicy.SKIP, 0, 0, False, OverlapDecision.START),
        (OverlapPolicy.SKIP, 1, 0, False, OverlapDecision.SKIP),
        (OverlapPolicy.SKIP, 1, 0, True, OverlapDecision.START),
        (OverlapPolicy.ALLOW, 3, 0, False, OverlapDecision.START),
        (OverlapPolicy.BUFFER_ONE, 1, 0, False, OverlapDecision.WAIT),
        (OverlapPolicy.BUFFER_ONE, 1, 1, False, OverlapDecision.SKIP),
        (OverlapPolicy.BUFFER_ONE, 0, 1, False, OverlapDecision.START),
        (OverlapPolicy.CANCEL_RUNNING, 1, 0, False, OverlapDecision.CANCEL_RUNNING),
        (OverlapPolicy.CANCEL_RUNNING, 0, 0, False, OverlapDecision.START),
    ],
)
def test_overlap_decisions(
    policy: OverlapPolicy, running: int, waiting: int, force: bool, expected: OverlapDecision
) -> None:
    assert decide_overlap(policy, running=running, waiting=waiting, force=force) is expected


MISSED = [NOW - timedelta(minutes=minutes) for minutes in (50, 40, 30, 20, 10)]


def outcomes(policy: MisfirePolicy, window: float | None) -> list[MisfireOutcome]:
    plans = plan_misfires(MISSED, policy=policy, now=NOW, catch_up_window_seconds=window)
    assert [plan.scheduled_for for plan in plans] == MISSED  # every one recorded, in order
    return [plan.outcome for plan in plans]


R, M, F = MisfireOutcome.RUN, MisfireOutcome.MISSED, MisfireOutcome.FAILED


@pytest.mark.parametrize(
    ("policy", "window", "expected"),
    [
        (MisfirePolicy.SKIP, None, [M, M, M, M, M]),
        (MisfirePolicy.RUN_ONCE, None, [M, M, M, M, R]),
        (MisfirePolicy.RUN_ALL, None, [R, R, R, R, R]),
        (MisfirePolicy.FAIL, None, [F, F, F, F, F]),
        (MisfirePolicy.RUN_ALL, 25 * 60, [M, M, M, R, R]),
        (MisfirePolicy.RUN_ONCE, 25 * 60, [M, M, M, M, R]),
        (MisfirePolicy.RUN_ONCE, 5 * 60, [M, M, M, M, M]),
        (MisfirePolicy.FAIL, 5 * 60, [F, F, F, F, F]),
    ],
)
def test_misfire_plans(
    policy: MisfirePolicy, window: float | None, expected: list[MisfireOutcome]
) -> None:
    assert outcomes(policy, window) == expected


def test_nothing_missed_plans_nothing() -> None:
    plans = plan_misfires([], policy=MisfirePolicy.RUN_ALL, now=NOW, catch_up_window_seconds=None)
    assert plans == []


def test_missed_occurrences_keep_the_newest_when_there_are_too_many(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gql_scheduler.domain.actions import HandlerAction
    from gql_scheduler.domain.jobs import Job, JobSpec, JobState
    from gql_scheduler.domain.schedules import IntervalSchedule
    from gql_scheduler.scheduling import misfires

    down_since = NOW - timedelta(hours=4)
    spec = JobSpec(
        name="every-second",
        schedules=(IntervalSchedule(1.0, down_since),),
        action=HandlerAction("noop"),
    )
    job = Job(
        id="j",
        spec=spec,
        state=JobState.ACTIVE,
        created_at=down_since,
        updated_at=down_since,
        watermark=down_since,
    )
    missed = misfires.missed_occurrences(job, now=NOW, grace=timedelta(seconds=5))
    assert len(missed) == misfires.MAX_MISSED_RECORDED
    assert missed[-1] == NOW - timedelta(seconds=5)
    assert missed == sorted(missed)
    (record,) = [r for r in caplog.records if getattr(r, "action", "") == "misfires_dropped"]
    assert record.dropped == 4 * 3600 - 5 - misfires.MAX_MISSED_RECORDED


def test_the_lease_fence_stops_runs_before_an_unrenewed_lease_can_expire() -> None:
    from gql_scheduler.scheduling.leases import LeaseFence

    start = datetime(2026, 1, 1, tzinfo=UTC)
    fence = LeaseFence(now=start, lease_seconds=30, renew_every=10)
    # Renewals every 10 s; one that fails at 10 s still leaves the next one in time.
    assert not fence.must_stop(start + timedelta(seconds=10))
    # At 20 s the next try (30 s) would come when the leases expire: stop now.
    assert fence.must_stop(start + timedelta(seconds=20))
    fence.renewed(start + timedelta(seconds=20))
    assert not fence.must_stop(start + timedelta(seconds=30))
