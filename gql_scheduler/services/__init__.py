"""The use cases: jobs, executions and event streams. They validate what clients send into
domain objects, report problems with domain field names, and know nothing of GraphQL."""
