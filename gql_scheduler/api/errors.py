"""How errors reach clients: expected ones as data or coded GraphQL errors, the rest masked."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

from graphql import GraphQLError

from gql_scheduler.api.context import Info
from gql_scheduler.api.field_paths import graphql_path
from gql_scheduler.api.types import UserError
from gql_scheduler.domain.errors import InputErrors, Unavailable, UserInputError

log = logging.getLogger("gql_scheduler.api")

T = TypeVar("T")
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
UNAVAILABLE = "UNAVAILABLE"
MASKED_MESSAGE = "Internal server error."
_ERROR_ID = "_gql_scheduler_error_id"


async def collect_user_errors(
    info: Info, call: Awaitable[T], *, within: str | None = None
) -> tuple[T | None, list[UserError]]:
    """Run a mutation's use case; expected failures become `errors: [UserError!]!`.

    `within` names the input argument that holds the use case's fields (field_paths.py).
    """
    try:
        return await call, []
    except (InputErrors, UserInputError) as error:
        return None, user_errors(info, error, within=within)


def user_errors(
    info: Info, error: InputErrors | UserInputError, *, within: str | None = None
) -> list[UserError]:
    """Each problem with the path of the field in the client's request."""
    problems = error.errors if isinstance(error, InputErrors) else [error]
    return [
        UserError(
            field=None if item.field is None else graphql_path(info, item.field, within=within),
            message=item.message,
            code=item.code,
        )
        for item in problems
    ]


@contextmanager
def raise_as_graphql_error(info: Info) -> Iterator[None]:
    """For queries and field arguments, which have no errors list: a coded GraphQL error."""
    try:
        yield
    except InputErrors as error:
        raise _coded(info, error.message, error.errors[0]) from None
    except UserInputError as error:
        raise _coded(info, error.message, error) from None


def _coded(info: Info, message: str, error: UserInputError) -> GraphQLError:
    return GraphQLError(
        message,
        extensions={
            "code": BAD_USER_INPUT,
            "errorCode": error.code.value,
            "field": graphql_path(info, error.field or ()),
        },
    )


def is_unexpected(error: GraphQLError) -> bool:
    """A bug, not something the client did: masked in responses, logged with its traceback.

    Errors with no path come from parsing, validation and variable coercion: they speak of
    the client's document (and our scalars' own messages), so they are shown.
    """
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError) and bool(error.path)


def error_id_of(error: GraphQLError) -> str:
    """The id that ties what the client sees of a failure to its log line.

    Kept on the exception itself, so that the log (Schema.process_errors) and the mask
    (MaskErrors, later, on another GraphQLError wrapping the same exception) agree.
    """
    holder: object = error.original_error or error
    found = getattr(holder, _ERROR_ID, None)
    if not isinstance(found, str):
        found = uuid.uuid4().hex
        with suppress(AttributeError):  # an exception type that takes no attributes
            setattr(holder, _ERROR_ID, found)
    return found


def masked(error: GraphQLError) -> GraphQLError:
    """What a client is shown of an unexpected error: where, and the id to report. The
    database being unreachable is no bug: it is said as it is (UNAVAILABLE)."""
    if isinstance(error.original_error, Unavailable):
        return GraphQLError(
            error.original_error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": UNAVAILABLE},
        )
    return GraphQLError(
        MASKED_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": INTERNAL_SERVER_ERROR, "errorId": error_id_of(error)},
    )


def log_unexpected(errors: list[GraphQLError]) -> None:
    for error in errors:
        if isinstance(error.original_error, Unavailable):
            # Said once by the engine and the probes; one line per request would flood.
            log.debug("request refused: %s", error.message, extra={"action": "unavailable"})
        elif is_unexpected(error):
            log.error(
                "unexpected error in a resolver (error id %s)",
                error_id_of(error),
                exc_info=error.original_error,
                extra={
                    "action": "resolver_failed",
                    "path": error.path,
                    "error_id": error_id_of(error),
                },
            )
        else:
            log.debug("client error: %s", error.message, extra={"action": "client_error"})
