"""jobs(first, after, filter, orderBy): Relay pages over more jobs than one page holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gql_scheduler.testing import FixedClock
from tests import queries
from tests.graphql_client import GraphQLClient, running_client, settings_for

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def create_many(client: GraphQLClient, inputs: list[dict[str, Any]]) -> list[str]:
    ids = []
    for job_input in inputs:
        data = await client.data(queries.CREATE_JOB, {"input": job_input})
        assert data["createJob"]["errors"] == []
        ids.append(data["createJob"]["job"]["id"])
    return ids


async def walk(client: GraphQLClient, first: int, **variables: Any) -> list[dict[str, Any]]:
    """Every node, page by page, checking each page's info on the way."""
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await client.data(queries.JOBS, {"first": first, "after": after, **variables}))[
            "jobs"
        ]
        edges = page["edges"]
        info = page["pageInfo"]
        assert len(edges) <= first
        assert info["hasPreviousPage"] is (after is not None)
        if edges:
            assert info["startCursor"] == edges[0]["cursor"]
            assert info["endCursor"] == edges[-1]["cursor"]
        nodes.extend(edge["node"] for edge in edges)
        if not info["hasNextPage"]:
            return nodes
        after = info["endCursor"]


async def test_pages_cover_every_job_once_in_name_order(client: GraphQLClient) -> None:
    names = [f"job-{index:03d}" for index in range(120)]
    await create_many(client, [queries.job_input(name) for name in reversed(names)])
    first_page = (await client.data(queries.JOBS, {"first": 50}))["jobs"]
    assert first_page["totalCount"] == 120
    assert first_page["pageInfo"]["hasNextPage"] is True
    nodes = await walk(client, 50)
    assert [node["name"] for node in nodes] == names


async def test_created_desc_breaks_ties_by_id(database_url: str) -> None:
    clock = FixedClock(NOW)  # every job gets the very same createdAt
    async with running_client(settings_for(database_url), clock=clock) as client:
        ids = await create_many(client, [queries.job_input(f"j{i}") for i in range(25)])
        nodes = await walk(client, 7, orderBy="CREATED_DESC")
    assert [node["id"] for node in nodes] == sorted(ids, reverse=True)


async def test_next_run_order_puts_jobs_that_never_run_last(database_url: str) -> None:
    clock = FixedClock(NOW)
    async with running_client(settings_for(database_url), clock=clock) as client:
        inputs = [
            queries.job_input(
                f"every-{minutes}",
                schedules=[{"interval": {"everySeconds": minutes * 60}}],
                paused=minutes % 4 == 0,
            )
            for minutes in range(1, 30)
        ]
        await create_many(client, inputs)
        nodes = await walk(client, 6, orderBy="NEXT_RUN_ASC")
    active = [node for node in nodes if node["state"] == "ACTIVE"]
    paused = [node for node in nodes if node["state"] == "PAUSED"]
    assert nodes == active + paused
    assert [node["name"] for node in active] == [
        f"every-{minutes}" for minutes in range(1, 30) if minutes % 4
    ]
    assert all(node["nextRunAt"] is None for node in paused)
    assert len(nodes) == 29


async def test_filter_by_state_tags_and_search(client: GraphQLClient) -> None:
    await create_many(
        client,
        [
            queries.job_input("Billing export", tags=["finance", "daily"]),
            queries.job_input("billing cleanup", tags=["finance"], paused=True),
            queries.job_input("Backup 100% of disks", tags=["ops", "daily"], description="nas"),
            queries.job_input("under_score", tags=["ops"]),
        ],
    )

    async def names(**job_filter: Any) -> list[str]:
        data = await client.data(queries.JOBS, {"filter": job_filter})
        assert data["jobs"]["totalCount"] == len(data["jobs"]["edges"])
        return [edge["node"]["name"] for edge in data["jobs"]["edges"]]

    assert await names(states=["PAUSED"]) == ["billing cleanup"]
    assert await names(tags=["finance"]) == ["Billing export", "billing cleanup"]
    assert await names(tags=["finance", "daily"]) == ["Billing export"]  # all of them
    assert await names(search="BILLING") == ["Billing export", "billing cleanup"]
    assert await names(search="NAS") == ["Backup 100% of disks"]  # description too
    assert await names(search="100%") == ["Backup 100% of disks"]  # % is literal
    assert await names(search="d_s") == []  # _ is literal: no match in "disks"
    assert await names(search="r_sc") == ["under_score"]
    assert await names(states=["ACTIVE"], tags=["daily"], search="back") == ["Backup 100% of disks"]


async def test_a_foreign_cursor_or_page_size_is_a_clear_error(client: GraphQLClient) -> None:
    for variables, field in (
        ({"after": "not-a-cursor"}, ["after"]),
        ({"first": 0}, ["first"]),
        ({"first": 501}, ["first"]),
    ):
        body = await client.execute(queries.JOBS, variables)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["extensions"]["field"] == field


async def test_a_name_cursor_does_not_work_for_another_order(client: GraphQLClient) -> None:
    await create_many(client, [queries.job_input(f"j{i}") for i in range(3)])
    page = (await client.data(queries.JOBS, {"first": 1}))["jobs"]
    body = await client.execute(
        queries.JOBS,
        {"first": 1, "after": page["pageInfo"]["endCursor"], "orderBy": "CREATED_DESC"},
    )
    assert body["errors"][0]["extensions"]["field"] == ["after"]


async def test_upcoming_runs_count_is_bounded(client: GraphQLClient) -> None:
    data = await client.data(queries.CREATE_JOB, {"input": queries.job_input()})
    job_id = data["createJob"]["job"]["id"]
    query = "query($id: ID, $n: Int) { job(id: $id) { upcomingRuns(count: $n) } }"
    assert len((await client.data(query, {"id": job_id, "n": 100}))["job"]["upcomingRuns"]) == 100
    body = await client.execute(query, {"id": job_id, "n": 101})
    assert body["errors"][0]["extensions"]["field"] == ["count"]


async def test_preview_schedule_union_and_descriptions(client: GraphQLClient) -> None:
    after = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)  # a Sunday
    data = await client.data(
        queries.PREVIEW,
        {
            "schedules": [queries.cron("0 9 * * 1"), queries.cron("0 9 * * MON,WED")],
            "count": 3,
            "after": after.isoformat(),
        },
    )
    preview = data["previewSchedule"]
    assert preview["errors"] == []
    assert preview["runs"] == [
        "2026-11-23T09:00:00Z",
        "2026-11-25T09:00:00Z",
        "2026-11-30T09:00:00Z",
    ]
    assert preview["descriptions"] == [
        "At 09:00, only on Monday",
        "At 09:00, only on Monday and Wednesday",
    ]


async def test_preview_schedule_reports_errors_as_data(client: GraphQLClient) -> None:
    data = await client.data(
        queries.PREVIEW,
        {"schedules": [queries.cron("0 9 * * 1"), {"interval": {"everySeconds": 0}}]},
    )
    preview = data["previewSchedule"]
    assert (preview["runs"], preview["descriptions"]) == ([], [])
    assert [(e["field"], e["code"]) for e in preview["errors"]] == [
        (["schedules", "1", "interval", "everySeconds"], "INVALID")
    ]
    bad_count = await client.data(
        queries.PREVIEW, {"schedules": [queries.cron("* * * * *")], "count": 0}
    )
    assert bad_count["previewSchedule"]["errors"][0]["field"] == ["count"]


async def test_preview_defaults_to_now(client: GraphQLClient) -> None:
    data = await client.data(queries.PREVIEW, {"schedules": [{"interval": {"everySeconds": 60}}]})
    runs = [datetime.fromisoformat(run) for run in data["previewSchedule"]["runs"]]
    now = datetime.now(UTC)
    assert len(runs) == 5
    assert now < runs[0] <= now + timedelta(seconds=61)
