"""Talks to the real ASGI app over HTTP, as a client would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette

from gql_scheduler.app import Container, create_app
from gql_scheduler.domain.clock import Clock
from gql_scheduler.settings import Settings


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, app: Starlette) -> None:
        self.http = http
        self.app = app

    @property
    def container(self) -> Container:
        container: Container = self.app.state.container
        return container

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of a query that must not fail."""
        body = await self.execute(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"instance_name": "test-instance", **overrides}
    return Settings(_env_file=None, database_url=database_url, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_client(
    settings: Settings, *, clock: Clock | None = None
) -> AsyncIterator[GraphQLClient]:
    app = create_app(settings, clock=clock, apply_migrations=False)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        yield GraphQLClient(http, app)
