"""GraphQL documents the API tests share."""

from __future__ import annotations

from typing import Any

JOB_FIELDS = """
  id name description state pauseNote startAt endAt jitterSeconds overlapPolicy
  misfirePolicy catchUpWindowSeconds delivery timeoutSeconds tags createdAt updatedAt
  lastRunAt nextRunAt upcomingRuns(count: 3)
  retry { maxAttempts initialDelaySeconds backoffFactor maxDelaySeconds jitter }
  schedules {
    __typename
    ... on CronSchedule { expression timezone description }
    ... on IntervalSchedule { everySeconds anchor }
    ... on OnceSchedule { at }
  }
  action {
    __typename
    ... on HttpAction { url method headers { name value } body json successStatuses }
    ... on ShellAction { command env workingDirectory }
    ... on HandlerAction { name args }
    ... on EmailAction { to subject emailBody: body html }
  }
  lastExecution { id status }
  stats { total succeeded failed successRate }
"""

ERRORS = "errors { field message code }"

CREATE_JOB = f"""
mutation Create($input: CreateJobInput!) {{
  createJob(input: $input) {{ job {{ {JOB_FIELDS} }} {ERRORS} }}
}}
"""

UPDATE_JOB = f"""
mutation Update($id: ID!, $input: UpdateJobInput!) {{
  updateJob(id: $id, input: $input) {{ job {{ {JOB_FIELDS} }} {ERRORS} }}
}}
"""

DELETE_JOB = f"mutation Delete($id: ID!) {{ deleteJob(id: $id) {{ deletedJobId {ERRORS} }} }}"

PAUSE_JOB = f"""
mutation Pause($id: ID!, $note: String) {{
  pauseJob(id: $id, note: $note) {{ job {{ {JOB_FIELDS} }} {ERRORS} }}
}}
"""

RESUME_JOB = f"""
mutation Resume($id: ID!) {{ resumeJob(id: $id) {{ job {{ {JOB_FIELDS} }} {ERRORS} }} }}
"""

JOB = f"""
query Job($id: ID, $name: String) {{ job(id: $id, name: $name) {{ {JOB_FIELDS} }} }}
"""

JOBS = """
query Jobs($first: Int, $after: String, $filter: JobFilter, $orderBy: JobOrder) {
  jobs(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name state nextRunAt createdAt tags } }
  }
}
"""

PREVIEW = f"""
query Preview($schedules: [ScheduleInput!]!, $count: Int, $after: DateTime) {{
  previewSchedule(schedules: $schedules, count: $count, after: $after) {{
    runs descriptions {ERRORS}
  }}
}}
"""


def cron(expression: str, timezone: str = "UTC") -> dict[str, Any]:
    return {"cron": {"expression": expression, "timezone": timezone}}


def job_input(name: str = "nightly-report", **fields: Any) -> dict[str, Any]:
    """A valid CreateJobInput; keyword arguments replace or add fields."""
    base: dict[str, Any] = {
        "name": name,
        "schedules": [cron("0 9 * * 1")],
        "action": {"handler": {"name": "echo", "args": {"report": "weekly"}}},
    }
    base.update(fields)
    return base
