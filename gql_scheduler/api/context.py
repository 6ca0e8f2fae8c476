"""The per-request context: the use cases, this instance's info, and fresh DataLoaders."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from gql_scheduler.domain.access import ANONYMOUS_ACTOR, Principal
from gql_scheduler.domain.executions import Execution
from gql_scheduler.domain.jobs import Job
from gql_scheduler.services.executions import ExecutionService
from gql_scheduler.services.jobs import JobService
from gql_scheduler.services.streams import StreamService


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    instance: str
    scheduler_running: Callable[[], bool]


class Loaders:
    """Created per request so that nothing cached outlives it (Strawberry's dataloader guide)."""

    def __init__(self, jobs: JobService, executions: ExecutionService) -> None:
        self.job: DataLoader[str, Job | None] = DataLoader(_by_keys(jobs.get_many))
        self.execution: DataLoader[str, Execution | None] = DataLoader(
            _by_keys(executions.get_many)
        )
        self.last_execution: DataLoader[str, Execution | None] = DataLoader(
            _by_keys(executions.latest_of_jobs)
        )


def _by_keys(
    fetch: Callable[[Sequence[str]], Any],
) -> Callable[[list[str]], Any]:
    async def load(keys: list[str]) -> list[Any]:
        found = await fetch(keys)
        return [found.get(key) for key in keys]

    return load


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    jobs: JobService
    executions: ExecutionService
    streams: StreamService
    server: ServerInfo
    # None until authenticated (a websocket's at its connection_init); see api/access.py.
    principal: Principal | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.jobs, self.executions)

    @property
    def actor(self) -> str:
        """Who the change is recorded as made by (only authorised requests get that far)."""
        return self.principal.name if self.principal is not None else ANONYMOUS_ACTOR

    def for_event(self) -> Context:
        """A copy with fresh loaders: a websocket's context lives as long as the
        connection, and each subscription event must see the store as it is then."""
        return dataclasses.replace(self)


Info = StrawberryInfo[Context, None]
