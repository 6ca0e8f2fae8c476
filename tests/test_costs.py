"""The measure of an operation (api/costs.py), as a table: pure logic on the real schema."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import FragmentDefinitionNode, parse
from graphql.utilities import get_introspection_query, get_operation_ast

from gql_scheduler.api.costs import Measure, measure_operation
from gql_scheduler.api.schema import build_schema

SCHEMA = build_schema()._schema  # type: ignore[attr-defined]


PAGE = "query($n: Int) { jobs(first: $n) { edges { node { id } } } }"


def measure(query: str, variables: dict[str, Any] | None = None) -> Measure:
    document = parse(query)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operation = get_operation_ast(document)
    assert operation is not None
    return measure_operation(SCHEMA, fragments, operation, variables)


@pytest.mark.parametrize(
    ("query", "variables", "expected"),
    [
        ("{ health { status } }", None, Measure(1, 0, 6)),
        # 10 + 50 (the default page) x (1 + (1 + 1))
        ("{ jobs { edges { node { id } } } }", None, Measure(3, 0, 160)),
        ("{ jobs(first: 2) { edges { node { id } } } }", None, Measure(3, 0, 16)),
        (
            "query($n: Int) { jobs(first: $n) { edges { node { id } } } }",
            {"n": 3},
            Measure(3, 0, 19),
        ),
        # A variable's own default, then the argument's when none is given.
        (PAGE.replace("Int)", "Int = 4)"), {}, Measure(3, 0, 22)),
        (PAGE, {}, Measure(3, 0, 160)),
        # Job.stats weighs 20 per job: 10 + 2 x (1 + (1 + (20 + 1)))
        ("{ jobs(first: 2) { edges { node { stats { total } } } } }", None, Measure(4, 0, 56)),
        # A leaf list with a count costs its items.
        ("{ job(id: 1) { upcomingRuns(count: 30) } }", None, Measure(1, 0, 32)),
        ("{ a: health { status } b: health { status } }", None, Measure(1, 2, 12)),
        ("mutation { deleteJob(id: 1) { deletedJobId } }", None, Measure(1, 0, 11)),
        (
            "{ ...F } fragment F on Query { health { ... on Health { status } } }",
            None,
            Measure(1, 0, 6),
        ),
    ],
)
def test_measures(query: str, variables: dict[str, Any] | None, expected: Measure) -> None:
    assert measure(query, variables) == expected


def test_each_fragment_is_measured_once_however_often_it_is_spread() -> None:
    """100 fragments, each spreading the next twice: 2^100 aliases, counted exactly (a
    walk per spread, as Strawberry's limiters do, would not end within the test)."""
    chain = "".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(100))
    query = "{ ...F0 }\n" + chain + "fragment F100 on Query { a: __typename }\n"
    assert measure(query) == Measure(0, 2**100, 2**100)


def test_introspection_is_not_held_to_the_depth_limit() -> None:
    found = measure(get_introspection_query())
    assert found.depth == 0
    assert 0 < found.cost < 1000
