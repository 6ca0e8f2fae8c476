"""Occurrences whose time passed while no scheduler was up (invariant 5), and their fate."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gql_scheduler.domain.policies import MisfirePolicy


class MisfireOutcome(enum.StrEnum):
    RUN = "RUN"
    MISSED = "MISSED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class MisfirePlan:
    scheduled_for: datetime
    outcome: MisfireOutcome


MISFIRE_ERROR = "missed: no scheduler was running at its time"


def plan_misfires(
    missed: Sequence[datetime],
    *,
    policy: MisfirePolicy,
    now: datetime,
    catch_up_window_seconds: float | None,
) -> list[MisfirePlan]:
    """One plan per missed occurrence, oldest first; every one is recorded.

    Only occurrences inside the catch-up window (no window: all of them) may run; older
    ones are MISSED whatever the policy, except FAIL, which fails them all.
    """
    if policy is MisfirePolicy.FAIL:
        return [MisfirePlan(at, MisfireOutcome.FAILED) for at in missed]
    window_start = (
        now - timedelta(seconds=catch_up_window_seconds)
        if catch_up_window_seconds is not None
        else None
    )
    eligible = [at for at in missed if window_start is None or at >= window_start]
    if policy is MisfirePolicy.RUN_ALL:
        chosen = set(eligible)
    elif policy is MisfirePolicy.RUN_ONCE:
        chosen = set(eligible[-1:])  # coalesce into the latest
    else:
        chosen = set()
    return [
        MisfirePlan(at, MisfireOutcome.RUN if at in chosen else MisfireOutcome.MISSED)
        for at in missed
    ]
