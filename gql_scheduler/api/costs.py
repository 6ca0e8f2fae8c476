"""How much work one operation asks for: its depth, its aliases and its cost.

Cost is fields times page sizes: a field costs its weight, and a field with a page-size
argument (`first`, `last`, `count`) multiplies what is selected under it by that size, as
given in the document, in the variables, or by the argument's default. Fields that read
the database once per row (`Job.stats`, `Job.executions`) weigh the most; fields that
DataLoaders batch into one read per request weigh as little as plain fields.

Written here rather than taken from Strawberry: its QueryDepthLimiter and
MaxAliasesLimiter walk a fragment again at every spread, so a document of 18 fragments
that each spread the next twice took 1.7 s to validate (doubling with each fragment
more). This walk measures each fragment once, and one walk gives all three numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    Undefined,
    VariableNode,
    get_named_type,
)

PAGE_ARGUMENTS = ("first", "last", "count")
DEFAULT_WEIGHT = 1
MUTATION_WEIGHT = 10

# Type.field -> weight. Reads that are not batched cost one query per parent row.
FIELD_WEIGHTS: Mapping[str, int] = {
    # A page and its total count: two queries.
    "Query.jobs": 10,
    "Query.executions": 10,
    "Job.executions": 10,
    # An aggregate over a job's executions, once per job.
    "Job.stats": 20,
    # One query, or a few counts.
    "Query.job": 2,
    "Query.execution": 2,
    "Query.health": 5,
    # Schedule maths per job.
    "Job.nextRunAt": 2,
    "Job.misfirePolicy": 1,
}


@dataclass(frozen=True, slots=True)
class Measure:
    depth: int = 0
    aliases: int = 0
    cost: int = 0

    def beside(self, other: Measure) -> Measure:
        """Two selections side by side: the deeper depth, the sums of the rest."""
        return Measure(
            max(self.depth, other.depth), self.aliases + other.aliases, self.cost + other.cost
        )


def measure_operation(
    schema: GraphQLSchema,
    fragments: Mapping[str, FragmentDefinitionNode],
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> Measure:
    """The operation's measure; call it on a validated document only."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return Measure()
    walk = _Walk(schema, fragments, operation, variables or {})
    return walk.selections(operation.selection_set, root)


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.variable_defaults = {
            definition.variable.name.value: definition.default_value
            for definition in operation.variable_definitions or ()
        }
        self.is_mutation = operation.operation is OperationType.MUTATION
        self.measured: dict[str, Measure] = {}
        self.entered: set[str] = set()

    def selections(self, selection_set: SelectionSetNode, parent: GraphQLNamedType) -> Measure:
        total = Measure()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total = total.beside(self.field(selection, parent))
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                if inner is not None:
                    total = total.beside(self.selections(selection.selection_set, inner))
            elif isinstance(selection, FragmentSpreadNode):
                total = total.beside(self.fragment(selection.name.value))
        return total

    def fragment(self, name: str) -> Measure:
        """Measured once, however often it is spread; a cycle (invalid) counts nothing."""
        if name in self.measured:
            return self.measured[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.entered:
            return Measure()
        self.entered.add(name)
        condition = self.schema.get_type(definition.type_condition.name.value)
        found = (
            Measure() if condition is None else self.selections(definition.selection_set, condition)
        )
        self.measured[name] = found
        return found

    def field(self, node: FieldNode, parent: GraphQLNamedType) -> Measure:
        definition = _field_of(parent, node.name.value)
        weight = self.weight(parent, node.name.value)
        pages = self.page_size(node, definition)
        aliases = 1 if node.alias else 0
        if node.selection_set is None or definition is None:
            return Measure(0, aliases, weight * pages)
        inner = self.selections(node.selection_set, get_named_type(definition.type))
        # Introspection nests deeper than any query of ours (GraphiQL's goes 14 levels
        # through `ofType`); graphql-core's MaxIntrospectionDepthRule bounds it instead.
        depth = 0 if node.name.value in _INTROSPECTION_ROOTS else inner.depth + 1
        return Measure(depth, inner.aliases + aliases, weight + pages * inner.cost)

    def weight(self, parent: GraphQLNamedType, name: str) -> int:
        if self.is_mutation and parent is self.schema.mutation_type:
            return MUTATION_WEIGHT
        return FIELD_WEIGHTS.get(f"{parent.name}.{name}", DEFAULT_WEIGHT)

    def page_size(self, node: FieldNode, definition: GraphQLField | None) -> int:
        """The largest page-size argument the field is given (at least 1)."""
        sizes = [1]
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        for name in PAGE_ARGUMENTS:
            value = self.int_value(given[name]) if name in given else None
            if value is None and definition is not None and name in definition.args:
                default = definition.args[name].default_value
                value = default if isinstance(default, int) else None
            if value is not None:
                sizes.append(value)
        return max(sizes)

    def int_value(self, node: Any) -> int | None:
        """A literal or a variable's value; anything else (null, a wrong type) is left to
        execution, which refuses it, and counts as the argument's default here."""
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, VariableNode):
            name = node.name.value
            value = self.variables.get(name, Undefined)
            if value is Undefined:
                value = self.int_value(self.variable_defaults.get(name))
            return value if isinstance(value, int) and not isinstance(value, bool) else None
        return None


# Introspection costs like the rest (its types nest: `ofType`, `fields { type }`).
_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
_META_FIELDS = {
    "__schema": SchemaMetaFieldDef,
    "__type": TypeMetaFieldDef,
    "__typename": TypeNameMetaFieldDef,
}


def _field_of(parent: GraphQLNamedType, name: str) -> GraphQLField | None:
    if name in _META_FIELDS:
        return _META_FIELDS[name]
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        found: GraphQLField | None = parent.fields.get(name)
        return found
    return None
