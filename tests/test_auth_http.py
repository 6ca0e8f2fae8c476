"""API keys and roles over HTTP: every operation against every role, and who did what."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from gql_scheduler.domain.access import Role
from gql_scheduler.domain.executions import ExecutionStatus
from gql_scheduler.store.tables import events, jobs
from tests import store_probe
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.queries import job_input

pytestmark = pytest.mark.timeout(120)

QUERY_JOBS = "{ jobs(first: 5) { totalCount edges { node { id name state } } } }"
TRIGGER = (
    "mutation($id: ID!) { triggerJob(id: $id) { execution { id triggeredBy } errors { code } } }"
)
ERRORS = "errors { field code }"
CREATE = (
    f"mutation($input: CreateJobInput!) {{ createJob(input: $input) {{ job {{ id }} {ERRORS} }} }}"
)

# Each mutation, the role it needs, and its document (variables: the job's and a failed
# execution's ids).
MUTATIONS: dict[str, tuple[Role, str]] = {
    "pauseJob": (Role.OPERATOR, f"mutation($job: ID!) {{ pauseJob(id: $job) {{ {ERRORS} }} }}"),
    "resumeJob": (Role.OPERATOR, f"mutation($job: ID!) {{ resumeJob(id: $job) {{ {ERRORS} }} }}"),
    "triggerJob": (
        Role.OPERATOR,
        f"mutation($job: ID!) {{ triggerJob(id: $job) {{ {ERRORS} }} }}",
    ),
    "cancelExecution": (
        Role.OPERATOR,
        f"mutation($execution: ID!) {{ cancelExecution(id: $execution) {{ {ERRORS} }} }}",
    ),
    "retryExecution": (
        Role.OPERATOR,
        f"mutation($execution: ID!) {{ retryExecution(id: $execution) {{ {ERRORS} }} }}",
    ),
    "createJob": (
        Role.ADMIN,
        f'mutation {{ createJob(input: {{name: "made", schedules: [{{cron: {{expression: '
        f'"0 9 * * 1"}}}}], action: {{handler: {{name: "noop"}}}}}}) {{ {ERRORS} }} }}',
    ),
    "updateJob": (
        Role.ADMIN,
        'mutation($job: ID!) { updateJob(id: $job, input: {description: "x"}) '
        f"{{ {ERRORS} }} }}",
    ),
    "deleteJob": (Role.ADMIN, f"mutation($job: ID!) {{ deleteJob(id: $job) {{ {ERRORS} }} }}"),
    "backfillJob": (
        Role.ADMIN,
        "mutation($job: ID!, $from: DateTime!, $to: DateTime!) { backfillJob(id: $job, "
        f"from: $from, to: $to) {{ {ERRORS} }} }}",
    ),
}


class Keys:
    def __init__(self, client: GraphQLClient) -> None:
        self.client = client
        self.secrets: dict[str, str] = {}
        self.made = 0

    async def create(self, name: str, role: Role) -> str:
        _, secret = await self.client.container.api_keys.create(name, role)
        await self.client.container.api_keys.refresh()
        self.secrets[name] = secret
        return secret

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return await self.client.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )


@pytest.fixture
async def secured(database_url: str) -> AsyncIterator[Keys]:
    async with running_client(settings_for(database_url, auth="required")) as client:
        keys = Keys(client)
        for role in Role:
            await keys.create(f"{role}-key", role)
        yield keys


async def _variables(keys: Keys) -> dict[str, Any]:
    """A paused job (its runs never start by themselves) and a failed execution of it."""
    keys.made += 1
    created = await keys.post(
        CREATE,
        {"input": job_input(f"target-{keys.made}", paused=True)},
        key=keys.secrets["admin-key"],
    )
    job_id = created.json()["data"]["createJob"]["job"]["id"]
    now = datetime.now(UTC)
    failed = await store_probe.insert_execution(
        keys.client.container.database, job_id, now, status=ExecutionStatus.FAILED
    )
    return {
        "job": job_id,
        "execution": str(failed),
        "from": (now - timedelta(days=14)).isoformat(),
        "to": (now - timedelta(days=7)).isoformat(),
    }


async def _snapshot(keys: Keys) -> tuple[dict[str, int], list[Any]]:
    database = keys.client.container.database
    async with database.read() as connection:
        rows = (await connection.execute(sa.select(jobs.c.id, jobs.c.state, jobs.c.version))).all()
    return await store_probe.table_counts(database), sorted(tuple(row) for row in rows)


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_may_do_what_its_rank_allows_and_nothing_more(
    secured: Keys, role: Role
) -> None:
    key = secured.secrets[f"{role}-key"]
    for field, (needed, document) in MUTATIONS.items():
        variables = await _variables(secured)
        before = await _snapshot(secured)
        response = await secured.post(document, variables, key=key)
        body = response.json()
        if role.allows(needed):
            assert response.status_code == 200, (field, body)
            assert "errors" not in body, (field, body)
            continue
        assert response.status_code == 403, (field, body)
        assert body["data"] is None, (field, body)
        [error] = body["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN", (field, error)
        assert f"{field} needs the {needed} role" in error["message"]
        assert await _snapshot(secured) == before, f"{field} refused but changed something"
    response = await secured.post(QUERY_JOBS, key=key)
    assert response.status_code == 200
    assert "errors" not in response.json()


async def test_a_document_mixing_roles_is_refused_whole(secured: Keys) -> None:
    variables = await _variables(secured)
    before = await _snapshot(secured)
    mixed = (
        "mutation($job: ID!) { pauseJob(id: $job) { errors { code } } "
        "deleteJob(id: $job) { errors { code } } }"
    )
    response = await secured.post(
        mixed, {"job": variables["job"]}, key=secured.secrets["operator-key"]
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await _snapshot(secured) == before  # not even the pause, which it may do


async def test_fragments_do_not_hide_a_field_from_the_role_check(secured: Keys) -> None:
    variables = await _variables(secured)
    document = (
        "mutation($job: ID!) { ...Sneaky } "
        "fragment Sneaky on Mutation { deleteJob(id: $job) { errors { code } } }"
    )
    response = await secured.post(
        document, {"job": variables["job"]}, key=secured.secrets["viewer-key"]
    )
    # Refused as a whole before it ran (403, no data), not only by the field's own check.
    assert response.status_code == 403
    assert response.json()["data"] is None
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    counts, _ = await _snapshot(secured)
    assert counts["jobs"] == 1


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer gqls_0123456789abcdef_not-the-secret", "Bearer nonsense", "Basic dXNlcjpwdw=="],
)
async def test_without_a_valid_key_nothing_is_read_or_run(
    secured: Keys, authorization: str | None
) -> None:
    await _variables(secured)
    before = await _snapshot(secured)
    headers = {"Authorization": authorization} if authorization else {}
    for document in (QUERY_JOBS, MUTATIONS["createJob"][1], "{ nonsense"):
        response = await secured.client.http.post(
            "/graphql", json={"query": document}, headers=headers
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        body = response.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "target" not in response.text  # no data of any kind
    assert await _snapshot(secured) == before


async def test_a_wrong_secret_for_a_real_key_id_is_refused(secured: Keys) -> None:
    real = secured.secrets["admin-key"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    response = await secured.post(QUERY_JOBS, key=forged)
    assert response.status_code == 401


async def test_health_needs_no_key(secured: Keys) -> None:
    response = await secured.client.http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] is True


async def test_a_revoked_key_is_refused_from_the_next_refresh(secured: Keys) -> None:
    key = secured.secrets["viewer-key"]
    assert (await secured.post(QUERY_JOBS, key=key)).status_code == 200
    await secured.client.container.api_keys.revoke("viewer-key")
    await secured.client.container.api_keys.refresh()
    assert (await secured.post(QUERY_JOBS, key=key)).status_code == 401


async def test_changes_record_the_key_that_made_them(
    secured: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gql_scheduler.service")
    admin = await secured.create("alice", Role.ADMIN)
    operator = await secured.create("bob", Role.OPERATOR)
    variables = await _variables(secured)
    await secured.post(MUTATIONS["updateJob"][1], {"job": variables["job"]}, key=admin)
    triggered = await secured.post(TRIGGER, {"id": variables["job"]}, key=operator)
    execution = triggered.json()["data"]["triggerJob"]["execution"]
    assert execution["triggeredBy"] == "bob"
    retried = await secured.post(
        "mutation($id: ID!) { retryExecution(id: $id) { execution { triggeredBy } } }",
        {"id": variables["execution"]},
        key=operator,
    )
    assert retried.json()["data"]["retryExecution"]["execution"]["triggeredBy"] == "bob"

    actors = await _job_event_actors(secured)
    assert actors == [("CREATED", "admin-key"), ("UPDATED", "alice")]
    changes = {(r.action, getattr(r, "actor", None)) for r in caplog.records}
    assert {("job_updated", "alice"), ("execution_triggered", "bob")} <= changes
    assert {("execution_retried", "bob"), ("job_created", "admin-key")} <= changes


async def _job_event_actors(keys: Keys) -> list[tuple[str, str | None]]:
    async with keys.client.container.database.read() as connection:
        rows = await connection.execute(
            sa.select(events.c.type, events.c.actor)
            .where(events.c.kind == "JOB")
            .order_by(events.c.id)
        )
        return [(row.type, row.actor) for row in rows]


async def test_with_auth_off_everyone_is_anonymous_and_the_engine_is_system(
    database_url: str,
) -> None:
    async with running_client(settings_for(database_url, auth="disabled")) as client:
        created = await client.data(
            "mutation($input: CreateJobInput!) { createJob(input: $input) { job { id } } }",
            {"input": job_input("open", paused=True)},
        )
        job_id = created["createJob"]["job"]["id"]
        triggered = await client.data(TRIGGER, {"id": job_id})
        assert triggered["triggerJob"]["execution"]["triggeredBy"] == "anonymous"
        scheduled = await store_probe.insert_execution(
            client.container.database, job_id, datetime.now(UTC)
        )
        read = await client.data(
            "query($id: ID!) { execution(id: $id) { triggeredBy } }", {"id": str(scheduled)}
        )
        assert read["execution"]["triggeredBy"] == "system"
        keys = Keys(client)
        assert await _job_event_actors(keys) == [("CREATED", "anonymous")]
