"""What to do with a run that is due while another run of the same job is still going."""

from __future__ import annotations

import enum

from gql_scheduler.domain.policies import OverlapPolicy


class OverlapDecision(enum.StrEnum):
    START = "START"
    SKIP = "SKIP"
    WAIT = "WAIT"  # stay QUEUED; start when the running one ends
    CANCEL_RUNNING = "CANCEL_RUNNING"  # cancel the running ones, then start


def decide_overlap(
    policy: OverlapPolicy, *, running: int, waiting: int, force: bool = False
) -> OverlapDecision:
    """`running` counts live runs of the job (lost ones excluded); `waiting` counts other
    runs already waiting for them under BUFFER_ONE."""
    if force or running == 0 or policy is OverlapPolicy.ALLOW:
        return OverlapDecision.START
    if policy is OverlapPolicy.CANCEL_RUNNING:
        return OverlapDecision.CANCEL_RUNNING
    if policy is OverlapPolicy.BUFFER_ONE and waiting == 0:
        return OverlapDecision.WAIT
    return OverlapDecision.SKIP
