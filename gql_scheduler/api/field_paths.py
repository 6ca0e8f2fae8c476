"""GraphQL paths for the domain field names the use cases report problems with.

A use case names the offending field as the domain does: `("job_id",)`, `("end_at",)`,
`("action", "http", "success_statuses", "0")`. A client needs it as its own request spelled
it: `["id"]`, `["input", "endAt"]`, `["input", "action", "http", "successStatuses", "0"]`.
The path is found by walking the resolver's arguments and input types, matching each
segment to a Python name and taking the GraphQL name the schema gives it, so the mapping
follows the schema by itself. List indexes pass through, and so does whatever lies inside
a JSON value (handler args and headers are the client's own keys).

A domain field that is not an argument of the resolver is looked up in the input argument
named by `within`: a job's spec fields all sit in `input`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strawberry.types.base import StrawberryContainer, StrawberryList, get_object_definition

from gql_scheduler.api.context import Info


def graphql_path(info: Info, field: Sequence[str], *, within: str | None = None) -> list[str]:
    """The path, in the request's GraphQL names, of the domain field `field`."""
    if not field:
        return []
    head, *rest = field
    argument = info.get_argument_definition(head)
    if argument is None and within is not None:
        argument = info.get_argument_definition(within)
        rest = list(field)
    if argument is None:
        return list(field)
    names = info.schema.config.name_converter
    return [names.get_graphql_name(argument), *_walk(info, argument.type, rest)]


def _walk(info: Info, type_: Any, segments: Sequence[str]) -> list[str]:
    names = info.schema.config.name_converter
    path: list[str] = []
    for index, segment in enumerate(segments):
        type_ = _without_optional(type_)
        if isinstance(type_, StrawberryList) and segment.isdigit():
            path.append(segment)
            type_ = type_.of_type
            continue
        definition = get_object_definition(type_)
        found = None if definition is None else definition.get_field(segment)
        if found is None:  # a JSON value or a scalar: the rest is the client's own
            return [*path, *segments[index:]]
        path.append(names.get_graphql_name(found))
        type_ = found.type
    return path


def _without_optional(type_: Any) -> Any:
    while isinstance(type_, StrawberryContainer) and not isinstance(type_, StrawberryList):
        type_ = type_.of_type
    return type_
