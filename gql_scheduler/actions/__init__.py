"""Actions: turn a job's action (http, shell, handler, email) into a result."""
