"""The per-request context: the service, the caller's instance info, and fresh DataLoaders."""

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

from gql_scheduler.domain.executions import Execution
from gql_scheduler.domain.jobs import Job
from gql_scheduler.execution_service import ExecutionService
from gql_scheduler.live.streams import LiveService
from gql_scheduler.service import JobService


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    instance: str
    scheduler_running: Callable[[], bool]


class Loaders:
    """Created per request so that nothing cached outlives it (Strawberry's dataloader guide)."""

    def __init__(self, service: JobService) -> None:
        self.job: DataLoader[str, Job | None] = DataLoader(_by_keys(service.jobs_by_ids))
        self.execution: DataLoader[str, Execution | None] = DataLoader(
            _by_keys(service.executions_by_ids)
        )
        self.last_execution: DataLoader[str, Execution | None] = DataLoader(
            _by_keys(service.latest_executions)
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
    service: JobService
    executions: ExecutionService
    server: ServerInfo
    live: LiveService
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.service)

    def for_event(self) -> Context:
        """A copy with fresh loaders: a websocket's context lives as long as the
        connection, and each subscription event must see the store as it is then."""
        return dataclasses.replace(self)


Info = StrawberryInfo[Context, None]
