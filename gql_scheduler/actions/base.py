"""What every action runner takes and gives: a context in, output chunks and a result out.

A runner turns one action into one result. The dispatcher owns timeouts and cancellation:
it cancels the runner's task, and a runner must then stop its work for real (kill the
process group, close the connection) before letting CancelledError propagate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gql_scheduler.domain.actions import Action
from gql_scheduler.domain.output import OutputStream

__all__ = ["ActionResult", "ActionRunner", "OutputSink", "OutputStream", "RunContext"]


@dataclass(frozen=True, slots=True)
class RunContext:
    execution_id: str
    job_id: str
    job_name: str
    scheduled_for: datetime
    attempt: int
    # The same for every attempt at one occurrence, so receivers can deduplicate retries.
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class ActionResult:
    succeeded: bool
    result_code: int | None = None
    error: str | None = None


class OutputSink(Protocol):
    async def write(self, stream: OutputStream, text: str) -> None:
        """Record a chunk of output as it is produced (live output reads these)."""
        ...


class ActionRunner(Protocol):
    async def run(self, action: Action, context: RunContext, output: OutputSink) -> ActionResult:
        """Run `action` once. Expected failures are a result with succeeded=False and an
        error message; only cancellation propagates as an exception."""
        ...
