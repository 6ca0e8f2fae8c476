"""Live: the event feed (one reader of the outbox per instance), the subscribers it fans out
to, and event retention."""
