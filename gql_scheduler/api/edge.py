"""What every request meets before the API: the Host check and CORS (Starlette's own).

The Host check stops DNS rebinding: a page on evil.example whose name is made to resolve to
127.0.0.1 reaches the service with `Host: evil.example`, which is not on the list. Health
probes are exempt, since orchestrators address them by the pod's IP (and they tell nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# Bearer keys, not cookies: no credentials mode, so "*" cannot carry a user's session.
CORS_HEADERS = ("Authorization", "Content-Type")
CORS_MAX_AGE_SECONDS = 600


class HostCheck:
    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str], exempt: Collection[str]) -> None:
        self.app = app
        self.checked = TrustedHostMiddleware(app, allowed_hosts=allowed_hosts, www_redirect=False)
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in self.exempt:
            await self.checked(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def edge_middleware(
    *, allowed_hosts: Sequence[str], cors_origins: Sequence[str], exempt: Collection[str]
) -> list[Middleware]:
    """Outermost first: a request for another host is refused before anything else."""
    middleware = [Middleware(HostCheck, allowed_hosts=allowed_hosts, exempt=exempt)]
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=list(CORS_HEADERS),
                max_age=CORS_MAX_AGE_SECONDS,
            )
        )
    return middleware


class RequestSlots:
    """How many GraphQL HTTP requests may be served at once, and how many are."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._free = asyncio.Semaphore(limit)

    async def acquire(self) -> None:
        await self._free.acquire()
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        self._free.release()


class ConcurrencyLimit:
    """At most `slots.limit` GraphQL HTTP requests at once; the rest wait up to
    `wait_seconds`, then get 503 with `UNAVAILABLE` (and Retry-After), so that no burst of
    requests can take the event loop and the database from the engine. Websockets, probes
    and GraphiQL's assets are not counted."""

    def __init__(
        self, app: ASGIApp, *, slots: RequestSlots, wait_seconds: float, path: str
    ) -> None:
        self.app = app
        self.path = path
        self.wait_seconds = wait_seconds
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self.slots.acquire()
        except TimeoutError:
            await _busy()(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release()


def _busy() -> JSONResponse:
    error = {
        "message": "the service is busy; try again shortly",
        "extensions": {"code": "UNAVAILABLE"},
    }
    return JSONResponse({"errors": [error]}, status_code=503, headers={"Retry-After": "1"})
