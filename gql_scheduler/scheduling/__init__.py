"""The engine: timers turn into claims, claims into runs, and runs into history."""
