"""Live: the event feed, resumable event streams, live output, and event retention."""
