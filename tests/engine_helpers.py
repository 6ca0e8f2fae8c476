"""Waiting on the engine through the API, with bounded polls instead of sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests import queries
from tests.graphql_client import GraphQLClient

T = TypeVar("T")

EXECUTIONS = """
query($jobId: ID, $first: Int) {
  executions(first: $first, filter: {jobId: $jobId}) {
    totalCount
    edges { node {
      id status trigger attempt scheduledFor queuedAt startedAt finishedAt driftMs durationMs
      resultCode output error instance retryOf { id }
    } }
  }
}
"""

TRIGGER = """
mutation($id: ID!, $force: Boolean) {
  triggerJob(id: $id, force: $force) {
    execution { id status trigger attempt } errors { field message code }
  }
}
"""


async def create_job(client: GraphQLClient, name: str = "job", **fields: Any) -> str:
    data = await client.data(queries.CREATE_JOB, {"input": queries.job_input(name, **fields)})
    assert data["createJob"]["errors"] == [], data["createJob"]["errors"]
    job_id: str = data["createJob"]["job"]["id"]
    return job_id


async def executions(client: GraphQLClient, job_id: str | None = None) -> list[dict[str, Any]]:
    """Oldest first."""
    data = await client.data(EXECUTIONS, {"jobId": job_id, "first": 500})
    return [edge["node"] for edge in reversed(data["executions"]["edges"])]


async def poll(
    fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, within: float = 10.0
) -> T:
    """Fetch until `done` holds; fail with the last value seen after `within` seconds."""
    seen: T | None = None
    try:
        async with asyncio.timeout(within):
            while True:
                seen = await fetch()
                if done(seen):
                    return seen
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"gave up after {within} s; last seen: {seen}") from None


async def wait_for(
    client: GraphQLClient,
    job_id: str | None,
    done: Callable[[list[dict[str, Any]]], bool],
    *,
    within: float = 10.0,
) -> list[dict[str, Any]]:
    """Poll the job's executions (oldest first) until `done` holds."""
    return await poll(lambda: executions(client, job_id), done, within=within)


def with_status(items: list[dict[str, Any]], *statuses: str) -> list[dict[str, Any]]:
    return [item for item in items if item["status"] in statuses]


def terminal(items: list[dict[str, Any]]) -> bool:
    return all(item["status"] not in ("QUEUED", "RUNNING") for item in items)
