"""GraphQL over HTTP: the body limit, the query gate, and protocol errors as JSON.

Strawberry answers a malformed request (`{"query": 5}`, a body that is not JSON) with a
plain-text 400, and one it did not foresee (invalid UTF-8, a JSON number as the body,
JSON nested past the recursion limit) with a 500. The GraphQL-over-HTTP spec asks for a
4xx with a JSON body of `errors`; `GatedGraphQL` gives that for all of them, and runs
every operation through the query gate (api/limits.py) first.

The body limit is ASGI middleware counting the bytes as the app reads them, so a large
body is refused once the limit is passed, not after it was all read and parsed; a
Content-Length over the limit is refused before reading anything.
"""

from __future__ import annotations

import json
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError, OperationType
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from gql_scheduler.api.context import Context
from gql_scheduler.api.limits import BAD_REQUEST, QueryGate

PAYLOAD_TOO_LARGE = 413


def error_response(status: int, message: str, **extensions: Any) -> JSONResponse:
    """A GraphQL response with one request error and no data."""
    error = {"message": message, "extensions": {"code": BAD_REQUEST, **extensions}}
    return JSONResponse({"errors": [error]}, status_code=status)


def decode_json(data: str | bytes) -> object:
    """json.loads, with every way of not being JSON reported as a JSONDecodeError (which
    Strawberry turns into a 400, and its websocket readers skip or close on)."""
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise
    except UnicodeDecodeError:
        raise json.JSONDecodeError("the body is not valid UTF-8", "", 0) from None
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", "", 0) from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise json.JSONDecodeError(str(error), "", 0) from None


class GatedGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with the query gate, and its request errors as JSON."""

    gate: QueryGate | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as error:
            response = error_response(error.status_code, error.reason)
        await response(scope, receive, send)

    def decode_json(self, data: str | bytes) -> object:
        return decode_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "the request must be a JSON object")
        return parsed

    async def execute_single(  # Strawberry's signature
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # No query at all stays Strawberry's 400 (a malformed request, not a bad document).
        if self.gate is not None and request_data.query:
            admission = self.gate.admit(
                request_data.query, request_data.variables, request_data.operation_name
            )
            if admission.errors:
                return ExecutionResult(data=None, errors=admission.errors)
            operation = admission.operation
            if operation is not None and operation.operation is OperationType.SUBSCRIPTION:
                return ExecutionResult(data=None, errors=[subscription_over_http()])
        return await super().execute_single(
            request=request,
            request_adapter=request_adapter,
            sub_response=sub_response,
            context=context,
            root_value=root_value,
            request_data=request_data,
        )


def subscription_over_http() -> GraphQLError:
    return GraphQLError(
        "subscriptions are served over websockets at this URL "
        "(graphql-transport-ws or graphql-ws), not over HTTP",
        extensions={"code": BAD_REQUEST},
    )


class BodyTooLarge(Exception):
    """The request body is over the limit."""


class BodyLimit:
    """ASGI middleware: HTTP request bodies of at most `max_bytes`, or a JSON 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:
            # Raised while the app reads the body, before it could start a response.
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is over the limit of {self.max_bytes} bytes"
        response = error_response(PAYLOAD_TOO_LARGE, message, limit="maxRequestBytes")
        await response(scope, receive, send)


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server (h11) refuses a malformed length itself
    return 0
