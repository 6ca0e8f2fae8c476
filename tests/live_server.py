"""The real service on 127.0.0.1, in this test's event loop: HTTP and websockets.

Subscriptions need a real server (the ASGI test transport speaks no websockets). Running it
in-process keeps `container` reachable for checks such as the feed's subscriber count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from gql_scheduler.app import Container, create_app, uvicorn_options
from gql_scheduler.bench.serving import LOCALHOST, serving
from gql_scheduler.domain.clock import Clock
from gql_scheduler.settings import Settings


@dataclass
class LiveServer:
    base_url: str
    container: Container
    http: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/graphql"

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        assert response.status_code == 200, body
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


@asynccontextmanager
async def live_server(
    settings: Settings, *, clock: Clock | None = None
) -> AsyncIterator[LiveServer]:
    app = create_app(settings, clock=clock, apply_migrations=False)
    async with serving(app, lifespan="on", **uvicorn_options(settings)) as port:
        base_url = f"http://{LOCALHOST}:{port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            yield LiveServer(base_url, app.state.container, http)
