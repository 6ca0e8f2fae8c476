"""The job repository's start-up read: every active job, with its tags."""

from __future__ import annotations

from gql_scheduler.store.jobs import JobRepository
from tests import queries
from tests.engine_helpers import create_job
from tests.graphql_client import GraphQLClient


async def test_list_active_gives_each_active_job_its_own_tags(client: GraphQLClient) -> None:
    tagged = await create_job(client, "tagged", tags=["nightly", "billing"])
    plain = await create_job(client, "plain")
    paused = await create_job(client, "paused", tags=["nightly"])
    await client.data(queries.PAUSE_JOB, {"id": paused})
    async with client.container.database.read() as connection:
        active = await JobRepository(connection).list_active()
    found = {job.id: sorted(job.spec.tags) for job in active}
    assert found == {tagged: ["billing", "nightly"], plain: []}
