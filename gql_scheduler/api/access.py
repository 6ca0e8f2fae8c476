"""Authentication and roles at the API's edge, the same on HTTP and both websocket protocols.

The role each root field needs is declared on the field (`permission_classes`, checked by
Strawberry around its resolver wherever it runs). Before anything runs, an operation is
checked as a whole against the same declarations (`refusal`), so that a document mixing
fields of several roles is refused entirely rather than half-executed, and a websocket
can be closed with 4403 before its operation starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql import (
    ExecutionResult as GraphQLExecutionResult,
)
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission

from gql_scheduler.domain.access import ANONYMOUS, Principal, Role, bearer_secret
from gql_scheduler.services.api_keys import ApiKeyService

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
# Websocket close codes (4000-4999 are the application's): no or bad key / role.
UNAUTHENTICATED_CLOSE_CODE = 4401
FORBIDDEN_CLOSE_CODE = 4403
UNAUTHENTICATED_MESSAGE = (
    "authentication required: send an API key as `Authorization: Bearer <secret>` "
    "(on websockets: in the connection_init payload)"
)
_DEFINITION = "strawberry-definition"


class Authenticator:
    """Who a request acts as. With auth off everyone is `anonymous` with every role,
    unless it presents a valid key (its name is then recorded as the actor)."""

    def __init__(self, keys: ApiKeyService, *, required: bool) -> None:
        self.keys = keys
        self.required = required

    def principal_for(self, authorization: object) -> Principal | None:
        secret = bearer_secret(authorization)
        principal = self.keys.authenticate(secret) if secret else None
        if principal is None and not self.required:
            return ANONYMOUS
        return principal


class _NeedsRole(BasePermission):
    role: Role = Role.ADMIN
    error_extensions = {"code": FORBIDDEN}  # noqa: RUF012  (Strawberry reads it so)

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        principal: Principal | None = info.context.principal
        return principal is not None and principal.role.allows(self.role)

    @property
    def message(self) -> str:  # type: ignore[override]
        return f"forbidden: this needs the {self.role} role"


class NeedsOperator(_NeedsRole):
    role = Role.OPERATOR


class NeedsAdmin(_NeedsRole):
    role = Role.ADMIN


def unauthenticated_error() -> GraphQLError:
    return GraphQLError(UNAUTHENTICATED_MESSAGE, extensions={"code": UNAUTHENTICATED})


def refusal(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    principal: Principal | None,
) -> GraphQLError | None:
    """Why `principal` may not run this operation, or None when it may."""
    if principal is None:
        return unauthenticated_error()
    operation = _operation(document, operation_name)
    if operation is None:
        return None  # not ours to judge: execution reports the unknown operation
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    for field_name in _root_fields(operation.selection_set, document):
        needed = role_of_field(root, field_name)
        if not principal.role.allows(needed):
            return GraphQLError(
                f"forbidden: {field_name} needs the {needed} role (this key's role is "
                f"{principal.role})",
                extensions={"code": FORBIDDEN},
            )
    return None


def role_of_field(root: GraphQLObjectType, field_name: str) -> Role:
    """The role a root field declares; viewer for fields that declare none."""
    field = root.fields.get(field_name)
    definition = field.extensions.get(_DEFINITION) if field is not None else None
    roles = [
        permission.role
        for permission in getattr(definition, "permission_classes", None) or ()
        if isinstance(permission, type) and issubclass(permission, _NeedsRole)
    ]
    return max(roles, key=lambda role: role.rank, default=Role.VIEWER)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def _root_fields(selections: SelectionSetNode, document: DocumentNode) -> Iterator[str]:
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    pending = [selections]
    seen: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection.name.value
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    pending.append(fragment.selection_set)


class AccessControl(SchemaExtension):
    """Refuses an operation its principal may not run before any of it runs (HTTP, and
    websocket operations on Strawberry's own path)."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        document = execution.graphql_document
        if document is not None and hasattr(context, "principal"):
            schema = execution.schema._schema
            error = refusal(schema, document, execution.operation_name, context.principal)
            if error is not None:
                execution.result = GraphQLExecutionResult(data=None, errors=[error])
                _set_status(context.response, error)
        yield


def _set_status(response: object, error: GraphQLError) -> None:
    """401 or 403 over HTTP (the GraphQL-over-HTTP spec's reading of a refusal)."""
    if isinstance(response, Response):
        unauthenticated = (error.extensions or {}).get("code") == UNAUTHENTICATED
        response.status_code = 401 if unauthenticated else 403
        if unauthenticated:
            response.headers["WWW-Authenticate"] = "Bearer"
