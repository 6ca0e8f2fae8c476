"""The domain's enums, exposed to GraphQL under their contract names."""

from __future__ import annotations

import strawberry

from gql_scheduler.domain import actions, events, executions, jobs, output, policies
from gql_scheduler.domain.errors import ErrorCode as DomainErrorCode

JobState = strawberry.enum(jobs.JobState, name="JobState")
JobOrder = strawberry.enum(jobs.JobOrder, name="JobOrder")
OverlapPolicy = strawberry.enum(
    policies.OverlapPolicy,
    name="OverlapPolicy",
    description=(
        "What happens when a run is due while an earlier run of the same job is still going."
    ),
)
MisfirePolicy = strawberry.enum(
    policies.MisfirePolicy,
    name="MisfirePolicy",
    description=(
        "What happens to runs whose time passed while no scheduler was up (restart recovery)."
    ),
)
Delivery = strawberry.enum(policies.Delivery, name="Delivery")
HttpMethod = strawberry.enum(actions.HttpMethod, name="HttpMethod")
ExecutionStatus = strawberry.enum(executions.ExecutionStatus, name="ExecutionStatus")
ExecutionTrigger = strawberry.enum(executions.ExecutionTrigger, name="ExecutionTrigger")
JobEventType = strawberry.enum(events.JobEventType, name="JobEventType")
ExecutionEventType = strawberry.enum(events.ExecutionEventType, name="ExecutionEventType")
ErrorCode = strawberry.enum(DomainErrorCode, name="ErrorCode")
OutputStream = strawberry.enum(output.OutputStream, name="OutputStream")
