"""Pure domain: jobs, schedules, actions, executions, events and errors. No I/O here."""
