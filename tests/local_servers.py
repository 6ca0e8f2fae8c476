"""Real servers on 127.0.0.1 for action tests: an HTTP server (uvicorn) and an SMTP server.

Both record what they receive, start on a free port and are stopped by their context manager.
The HTTP server runs on the test's own event loop; aiosmtpd's Controller runs its loop in a
thread, so its start and stop go through asyncio.to_thread to keep the test's loop free.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from gql_scheduler.bench.serving import LOCALHOST, serving

BIG_BODY_BYTES = 1024 * 1024
SLOW_SECONDS = 30.0
START_TIMEOUT = 10.0


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]  # lower-case names, repeats kept
    body: bytes

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


@dataclass
class HttpRecorder:
    requests: list[RecordedRequest] = field(default_factory=list)
    # Set when the /slow handler sees its client go away.
    slow_disconnected: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class RunningHttpServer:
    base_url: str
    recorder: HttpRecorder

    def url(self, path: str) -> str:
        return self.base_url + path


def _app(recorder: HttpRecorder) -> Starlette:
    async def record(request: Request) -> None:
        headers = [(name.lower(), value) for name, value in request.headers.items()]
        body = await request.body()
        recorder.requests.append(RecordedRequest(request.method, request.url.path, headers, body))

    async def ok(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("ok")

    async def status(request: Request) -> Response:
        await record(request)
        code = int(request.path_params["code"])
        return PlainTextResponse(f"status {code}", status_code=code)

    async def slow(request: Request) -> Response:
        await record(request)
        try:
            await asyncio.wait_for(_client_gone(request), SLOW_SECONDS)
        except TimeoutError:
            return PlainTextResponse("slow")
        recorder.slow_disconnected.set()
        return Response(status_code=499)

    async def big(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("x" * BIG_BODY_BYTES)

    async def redirect(request: Request) -> Response:
        await record(request)
        return RedirectResponse("/ok", status_code=302)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    return Starlette(
        routes=[
            Route("/ok", ok, methods=methods),
            Route("/status/{code:int}", status, methods=methods),
            Route("/slow", slow, methods=methods),
            Route("/big", big, methods=methods),
            Route("/redirect", redirect, methods=methods),
        ]
    )


async def _client_gone(request: Request) -> None:
    # The body was read already, so the next ASGI message is the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


@asynccontextmanager
async def http_server() -> AsyncIterator[RunningHttpServer]:
    recorder = HttpRecorder()
    async with serving(_app(recorder), lifespan="off", ws="none") as port:
        yield RunningHttpServer(f"http://{LOCALHOST}:{port}", recorder)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        port: int = probe.getsockname()[1]
        return port


# ---------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: Message


@dataclass
class SmtpRecorder:
    messages: list[ReceivedMail] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)

    # aiosmtpd finds its hooks by these names.
    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.rejected:
            return "550 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content: Any = envelope.content
        self.messages.append(
            ReceivedMail(
                sender=str(envelope.mail_from),
                recipients=list(envelope.rcpt_tos),
                message=message_from_bytes(content),
            )
        )
        return "250 Message accepted for delivery"


@dataclass
class RunningSmtpServer:
    url: str
    recorder: SmtpRecorder


@asynccontextmanager
async def smtp_server() -> AsyncIterator[RunningSmtpServer]:
    recorder = SmtpRecorder()
    # The Controller checks readiness by connecting to its port, so it needs a real port
    # number rather than 0; the gap between probing and binding is a tiny race.
    port = closed_port()
    controller = Controller(recorder, hostname=LOCALHOST, port=port, ready_timeout=START_TIMEOUT)
    await asyncio.to_thread(controller.start)
    try:
        yield RunningSmtpServer(f"smtp://{LOCALHOST}:{port}", recorder)
    finally:
        await asyncio.to_thread(controller.stop)
