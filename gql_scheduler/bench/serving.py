"""uvicorn inside the caller's event loop, on 127.0.0.1 and a port of the system's choice.

For the benchmarks (and the tests), which measure or drive the real server from the same
process. Every wait is bounded; the server is stopped on exit whatever happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

LOCALHOST = "127.0.0.1"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


@asynccontextmanager
async def serving(app: ASGIApp, **options: Any) -> AsyncIterator[int]:
    """Serve `app` until the block ends; yields the port. `options` go to uvicorn.Config."""
    settings: dict[str, Any] = {
        "log_config": None,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 2,
        **options,
    }
    server = uvicorn.Server(uvicorn.Config(app, host=LOCALHOST, port=0, **settings))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped the server from starting
                    raise RuntimeError("the server stopped while starting")
                await asyncio.sleep(0.01)
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await task
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
