"""The probes orchestrators call, without an API key: liveness and readiness."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gql_scheduler.services.jobs import JobService
from gql_scheduler.services.readiness import ReadinessService

PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def probe_routes(
    *, jobs: JobService, readiness: ReadinessService, version: str, instance: str
) -> list[Route]:
    async def healthz(_request: Request) -> Response:
        report = await jobs.health()
        body: dict[str, Any] = {
            "status": "ok" if report.database else "degraded",
            "version": version,
            "instance": instance,
            "database": report.database,
        }
        return JSONResponse(body, status_code=200 if report.database else 503)

    async def readyz(_request: Request) -> Response:
        found = await readiness.check()
        body = {
            "status": "ready" if found.ready else "not ready",
            "instance": instance,
            "checks": found.checks,
            "problems": found.problems,
        }
        return JSONResponse(body, status_code=200 if found.ready else 503)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
