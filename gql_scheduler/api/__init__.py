"""The GraphQL API: Strawberry types, inputs, resolvers and the per-request context."""
