"""Persistence: SQLAlchemy Core tables, the engine, and repositories. Knows nothing of GraphQL."""
