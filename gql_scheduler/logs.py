"""Logging set-up: readable text or one JSON object per line, with structured `extra` fields.

Every line, from every logger (ours, httpx, httpcore, uvicorn, SQLAlchemy, asyncpg), is
redacted as a whole once formatted: URL userinfo, query values, bearer credentials, API keys
and every secret value the process knows of (domain/redaction.py) become "***". Redacting
the finished line rather than the record's parts also covers arguments, `extra` fields and
exception texts, whichever formatter produced them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from gql_scheduler.domain import redaction

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# SQLAlchemy logs each fetched row at DEBUG: rows hold jobs' actions, with their secrets,
# before the store has loaded (and so registered) them. Statements still log, at INFO.
_ROW_LOGGERS = ("sqlalchemy.engine",)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then masks what looks secret or is known to be."""

    def __init__(
        self, inner: logging.Formatter, secrets: redaction.KnownSecrets | None = None
    ) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = secrets if secrets is not None else redaction.known_secrets

    def format(self, record: logging.LogRecord) -> str:
        return redaction.redact(self.inner.format(record), self.secrets)


def configure_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler()
    inner = (
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    below_info = logging.getLevelName(level) < logging.INFO
    for name in _ROW_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if below_info else logging.NOTSET)
