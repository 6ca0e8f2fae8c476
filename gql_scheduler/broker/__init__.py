"""Fan-out of commit signals between instances: in-memory (one process) or PostgreSQL."""
