"""When a failed attempt runs again: exponential backoff, capped, with full jitter."""

from __future__ import annotations

from datetime import timedelta

from gql_scheduler.domain.policies import Delivery, RetryPolicy


def should_retry(policy: RetryPolicy, delivery: Delivery, attempt: int) -> bool:
    """At-most-once never runs an occurrence twice, so it never retries automatically."""
    return delivery is Delivery.AT_LEAST_ONCE and attempt < policy.max_attempts


def retry_delay(policy: RetryPolicy, attempt: int, random_unit: float) -> timedelta:
    """The wait before attempt `attempt + 1`, after attempt `attempt` failed.

    `random_unit` is a number in [0, 1) passed in so tests are exact. With jitter the delay
    is drawn from [0, backoff] ("full jitter"), which spreads retries of many jobs that
    failed together instead of hitting the recovered service in lockstep.
    """
    backoff = policy.initial_delay_seconds * policy.backoff_factor ** max(attempt - 1, 0)
    capped = min(backoff, policy.max_delay_seconds)
    seconds = capped * random_unit if policy.jitter else capped
    return timedelta(seconds=seconds)
