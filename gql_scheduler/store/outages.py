"""Saying once that the database is unreachable, and once that it is back.

During an outage every claim, renewal and periodic pass fails; a traceback for each buried
the one line that mattered (145 tracebacks in 15,230 lines for one 30 s outage). Failures
of any other kind are bugs, and keep their traceback every time.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import sqlalchemy as sa

# What a database that cannot be reached raises: refused or dropped connections, a server
# going away or starting up, no free connection in the pool, and SQLite files that cannot be
# written now (locked by another process, read-only, a full disk). Not "no such table" or
# a constraint: those are bugs, or the client's doing.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    sa.exc.TimeoutError,
    sa.exc.InterfaceError,
)
_UNAVAILABLE_PHRASES = (
    "database is locked",
    "database table is locked",
    "readonly database",
    "disk is full",
    "disk i/o error",
    "unable to open database",
    "cannot connect now",
    "the database system is",
    "connection was closed",
    "connection is closed",
    "terminating connection",
    "connect call failed",
    "connection refused",
)


# Of those, the ones where reads still work: a read that succeeds does not end them.
_WRITE_REFUSALS = ("database is locked", "readonly database", "disk is full")


def is_unreachable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached (now), rather than a bug."""
    if isinstance(error, _CONNECTION_ERRORS):
        return True
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa.exc.OperationalError | sqlite3.OperationalError):
        return any(phrase in _text_of(error) for phrase in _UNAVAILABLE_PHRASES)
    return False


def refuses_writes_only(error: BaseException) -> bool:
    """Whether `error` is SQLite refusing writes to a file it still reads."""
    return is_unreachable(error) and any(phrase in _text_of(error) for phrase in _WRITE_REFUSALS)


def _text_of(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    return str(orig or error).lower()


class OutageLog:
    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._down_since: float | None = None
        self._writes_refused = False
        self.reason = ""  # what the failure said, while down

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, what: str, error: BaseException) -> None:
        """Said once per outage when the database is unreachable; a bug every time."""
        if not is_unreachable(error):
            self._log.error("%s failed", what, exc_info=error, extra={"action": "loop_failed"})
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._writes_refused = refuses_writes_only(error)
            self.reason = f"{what}: {' '.join(str(error).split())[:200]}"
            self._log.warning(
                "the database is unreachable (%s); occurrences stay owed from each job's "
                "watermark and are settled by their misfire policy once it is back",
                self.reason,
                extra={"action": "database_unreachable"},
            )

    def succeeded(self, *, wrote: bool = True) -> None:
        """Something reached the database; `wrote=False` for reads, which do not end an
        outage of writes only (a full disk still reads)."""
        if self._down_since is None or (self._writes_refused and not wrote):
            return
        seconds, self._down_since = time.monotonic() - self._down_since, None
        self.reason = ""
        self._log.info(
            "the database is reachable again after %.1f s",
            seconds,
            extra={"action": "database_reachable", "seconds": round(seconds, 1)},
        )
