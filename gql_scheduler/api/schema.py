"""Assembles the schema from its modules."""

from __future__ import annotations

from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gql_scheduler.api.access import AccessControl
from gql_scheduler.api.errors import MASKED_MESSAGE, is_unexpected, log_unexpected, masked
from gql_scheduler.api.mutations import Mutation
from gql_scheduler.api.queries import Query
from gql_scheduler.api.scalars import DATETIME_SCALAR
from gql_scheduler.api.shared_results import SharedEventExecutor
from gql_scheduler.api.subscriptions import Subscription

CACHED_DOCUMENTS = 1024


class FastMaskErrors(MaskErrors):
    """MaskErrors without its runtime-checkable Protocol test, which costs more than the
    rest of a small result's handling; every result type it meets has `errors`."""

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return masked(error)


class SchedulerSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Strawberry logs every error with a traceback, client mistakes included; log
        # only our own failures loudly, once.
        log_unexpected(errors)


def build_schema(*, introspection: bool = True) -> strawberry.Schema:
    """`introspection=False` refuses __schema and __type in validation, with a GraphQL error."""
    no_introspection: list[type[SchemaExtension]] = [] if introspection else [DisableIntrospection]
    return SchedulerSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=SharedEventExecutor,
        config=StrawberryConfig(scalar_map={datetime: DATETIME_SCALAR}),
        extensions=[
            # Without these Strawberry parses and validates every document again (5x on
            # small queries). Factories: their LRU caches live at module level, shared.
            lambda: ParserCache(maxsize=CACHED_DOCUMENTS),
            lambda: ValidationCache(maxsize=CACHED_DOCUMENTS),
            AccessControl,
            lambda: FastMaskErrors(should_mask_error=is_unexpected, error_message=MASKED_MESSAGE),
            *no_introspection,
        ],
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
