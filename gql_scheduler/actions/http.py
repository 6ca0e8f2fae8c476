"""HTTP actions: one request through a shared httpx client, the response body as output.

Transport failures (refused, DNS, TLS, httpx's own timeouts) are translated here, at the
boundary, into a failed result with a one-line error; only cancellation propagates.
"""

from __future__ import annotations

import codecs
from typing import Any

import httpx

from gql_scheduler import __version__
from gql_scheduler.actions import guarded_transport
from gql_scheduler.actions.base import ActionResult, OutputSink, OutputStream, RunContext
from gql_scheduler.domain import redaction
from gql_scheduler.domain.actions import HttpAction

USER_AGENT = f"gql-scheduler/{__version__}"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_READ_CHUNK_BYTES = 64 * 1024

# Most specific first: ConnectTimeout is both a TimeoutException and a transport error.
_TRANSPORT_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (httpx.ConnectTimeout, "connection timed out"),
    (httpx.ReadTimeout, "timed out waiting for the response"),
    (httpx.WriteTimeout, "timed out sending the request"),
    (httpx.PoolTimeout, "timed out waiting for a free connection"),
    (httpx.TimeoutException, "timed out"),
    (httpx.ConnectError, "connection failed"),
    (httpx.ProxyError, "proxy error"),
    (httpx.UnsupportedProtocol, "invalid URL"),
    (httpx.InvalidURL, "invalid URL"),
    (httpx.ReadError, "connection broken while reading the response"),
    (httpx.WriteError, "connection broken while sending the request"),
    (httpx.ProtocolError, "HTTP protocol error"),
    (httpx.DecodingError, "could not decode the response body"),
    (httpx.TooManyRedirects, "too many redirects"),
    (httpx.HTTPError, "request failed"),
)
_CAUGHT = (httpx.HTTPError, httpx.InvalidURL)


class HttpRunner:
    """Runs HttpActions through one shared client, which the caller creates and closes."""

    def __init__(
        self, client: httpx.AsyncClient, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> None:
        self._client = client
        # Reading stops a little past this: give it the output collector's limit, so that a
        # huge response costs neither memory nor the time to download it.
        self._max_body_bytes = max_body_bytes

    async def run(
        self, action: HttpAction, context: RunContext, output: OutputSink
    ) -> ActionResult:
        status: int | None = None
        try:
            async with self._client.stream(
                action.method.value,
                action.url,
                headers=request_headers(action, context),
                **_body_arguments(action),
            ) as response:
                status = response.status_code
                await self._copy_body(response, output)
        except _CAUGHT as error:
            # A failure after the status line (the body broke off) still reports the status.
            return ActionResult(succeeded=False, result_code=status, error=describe_error(error))
        return _result(response, action.success_statuses)

    async def _copy_body(self, response: httpx.Response, output: OutputSink) -> None:
        # An incremental decoder, so that a character split across two network reads is
        # decoded whole; "replace" because a response body need not be UTF-8 at all.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        received = 0
        async for data in response.aiter_bytes(_READ_CHUNK_BYTES):
            received += len(data)
            await _write(output, decoder.decode(data))
            if received > self._max_body_bytes:
                return  # leaving the `async with` closes the response unread
        await _write(output, decoder.decode(b"", final=True))


def request_headers(action: HttpAction, context: RunContext) -> list[tuple[str, str]]:
    """The action's headers plus Idempotency-Key and User-Agent, unless it sets them itself."""
    headers = [(header.name, header.value) for header in action.headers]
    present = {name.lower() for name, _ in headers}
    if "idempotency-key" not in present:
        headers.append(("Idempotency-Key", context.idempotency_key))
    if "user-agent" not in present:
        headers.append(("User-Agent", USER_AGENT))
    return headers


def describe_error(error: Exception) -> str:
    """One line for a failed request, such as `connection failed: [Errno 111] ...`, or the
    network policy's own `refused: ...`.

    httpx puts the URL in some messages (an invalid URL, a redirect): its userinfo, query
    values and the job's secrets are masked, since the error is read back and logged."""
    refusal = guarded_transport.refusal_of(error)
    if refusal is not None:
        return redaction.redact(refusal)
    prefix = next(text for kind, text in _TRANSPORT_ERRORS if isinstance(error, kind))
    detail = redaction.redact(" ".join(str(error).split()))
    return f"{prefix}: {detail}" if detail else prefix


def _body_arguments(action: HttpAction) -> dict[str, Any]:
    if action.json is not None:
        return {"json": action.json}
    if action.body is not None:
        return {"content": action.body.encode("utf-8")}
    return {}


def _result(response: httpx.Response, success_statuses: tuple[int, ...]) -> ActionResult:
    status = response.status_code
    # An empty list means "any 2xx"; is_success is exactly 200-299.
    succeeded = status in success_statuses if success_statuses else response.is_success
    if succeeded:
        return ActionResult(succeeded=True, result_code=status)
    error = f"HTTP {status} {response.reason_phrase}".rstrip()
    return ActionResult(succeeded=False, result_code=status, error=error)


async def _write(output: OutputSink, text: str) -> None:
    if text:
        await output.write(OutputStream.STDOUT, text)
