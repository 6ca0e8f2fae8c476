"""What one GraphQL request may ask for, checked before Strawberry runs it.

One gate for every way in: HTTP (each operation), both websocket protocols and the
subscription fast lane. It refuses, in order: a document over its size in bytes, over its
number of tokens (graphql-core's `max_tokens`, the mechanism of Strawberry's
MaxTokensLimiter), one that does not parse or validate, an operation name that names
nothing (or none given for a document of several operations), and an operation deeper,
with more aliases or costing more than allowed (api/costs.py). Each refusal is a GraphQL
error with `extensions.code` BAD_REQUEST; one due to a limit also names it in
`extensions.limit`.

A document that passes is parsed and validated again by Strawberry's own (cached) steps,
which then find nothing to report: its caches and this gate's are keyed the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    parse,
    specified_rules,
)
from graphql.utilities import get_operation_ast
from strawberry.schema.schema import validate_document

from gql_scheduler.api import costs

BAD_REQUEST = "BAD_REQUEST"
CACHED_DOCUMENTS = 1024
_VALIDATION_RULES = tuple(specified_rules)


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_bytes: int = 32 * 1024
    max_tokens: int = 3000
    max_depth: int = 12
    max_aliases: int = 30
    max_cost: int = 10_000


def bad_request(message: str, **extensions: Any) -> GraphQLError:
    """An error in what the client sent, as a GraphQL error with code BAD_REQUEST."""
    return GraphQLError(message, extensions={"code": BAD_REQUEST, **extensions})


def limit_exceeded(limit: str, message: str, **details: Any) -> GraphQLError:
    return bad_request(message, limit=limit, **details)


@dataclass(frozen=True, slots=True)
class Admission:
    """The gate's answer: the parsed document and its operation, or why not."""

    document: DocumentNode | None = None
    operation: OperationDefinitionNode | None = None
    errors: list[GraphQLError] = field(default_factory=list)


class QueryGate:
    def __init__(self, schema: GraphQLSchema, limits: QueryLimits) -> None:
        self.schema = schema
        self.limits = limits
        # Keyed by the query text: a dashboard sends the same few documents over and over.
        self._parsed = functools.lru_cache(maxsize=CACHED_DOCUMENTS)(self._parse)
        self._validated = functools.lru_cache(maxsize=CACHED_DOCUMENTS)(self._validate)

    def admit(
        self, query: object, variables: object = None, operation_name: object = None
    ) -> Admission:
        if not isinstance(query, str) or not query:
            return Admission(errors=[bad_request("the request has no GraphQL query string")])
        if not isinstance(variables, Mapping | None):
            return Admission(errors=[bad_request("`variables` must be an object")])
        if not isinstance(operation_name, str | None):
            return Admission(errors=[bad_request("`operationName` must be a string")])
        size = len(query.encode("utf-8", "surrogatepass"))
        if size > self.limits.max_bytes:
            message = f"the document is {size} bytes; the limit is {self.limits.max_bytes}"
            return Admission(errors=[limit_exceeded("maxQueryBytes", message)])
        document = self._parsed(query)
        if isinstance(document, GraphQLError):
            return Admission(errors=[document])
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return Admission(errors=[_no_operation(operation_name)])
        # Measured before validation, which costs more on large documents (overlapping
        # fields are compared pairwise) and need not run on one refused anyway.
        errors = self._measure(document, operation, variables)
        if not errors:
            errors = self._validated(query)
        return Admission(document, operation, errors)

    def _parse(self, query: str) -> DocumentNode | GraphQLError:
        try:
            return parse(query, max_tokens=self.limits.max_tokens)
        except GraphQLError as error:
            if f"more than {self.limits.max_tokens} tokens" in error.message:
                message = f"the document has more than {self.limits.max_tokens} tokens"
                return limit_exceeded("maxQueryTokens", message)
            return error

    def _validate(self, query: str) -> list[GraphQLError]:
        document = self._parsed(query)
        assert isinstance(document, DocumentNode)  # called once it parsed
        return validate_document(self.schema, document, _VALIDATION_RULES)

    def _measure(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any] | None,
    ) -> list[GraphQLError]:
        fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        measure = costs.measure_operation(self.schema, fragments, operation, variables)
        limits = self.limits
        errors = []
        if measure.depth > limits.max_depth:
            message = (
                f"the operation is {measure.depth} levels deep; the limit is {limits.max_depth}"
            )
            errors.append(limit_exceeded("maxQueryDepth", message))
        if measure.aliases > limits.max_aliases:
            message = (
                f"the operation has {measure.aliases} aliases; the limit is {limits.max_aliases}"
            )
            errors.append(limit_exceeded("maxQueryAliases", message))
        if measure.cost > limits.max_cost:
            message = (
                f"the operation would cost {measure.cost} (fields times page sizes, reads "
                f"weighted); the limit is {limits.max_cost}: ask for smaller pages or fewer fields"
            )
            errors.append(limit_exceeded("maxQueryCost", message, cost=measure.cost))
        return errors


def _no_operation(name: str | None) -> GraphQLError:
    if name is None:
        return bad_request(
            "the document has several operations (or none): say which with operationName"
        )
    return bad_request(f'Unknown operation named "{name}".')
