"""Settings from the environment and `.env`, all prefixed GQL_SCHEDULER_."""

from __future__ import annotations

import enum
import os
import socket
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gql_scheduler.domain.policies import MisfirePolicy

ENV_PREFIX = "GQL_SCHEDULER_"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def _default_instance_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite+aiosqlite:///./gql_scheduler.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    enable_shell: bool = False
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE
    max_concurrent_executions: int = Field(default=100, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0)
    output_limit_bytes: int = Field(default=64 * 1024, ge=0)
    instance_name: str = Field(default_factory=_default_instance_name, min_length=1)
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.TEXT
    graphiql: bool = True
    smtp_url: str | None = None
    # How often each instance compares its timers with the store (the safety net).
    reconcile_seconds: float = Field(default=10.0, gt=0)
    # An occurrence nobody claimed this long after its time is a misfire.
    misfire_grace_seconds: float = Field(default=5.0, gt=0)
    # Events older than this are pruned; a subscription cannot resume from before them.
    event_retention_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    # How often the event feed reads the outbox when no broker signal woke it: the safety
    # net under the signals (NOTIFY), while anyone subscribes.
    event_poll_seconds: float = Field(default=1.0, gt=0)
    # Events waiting for one subscriber; past this it is too slow and is closed.
    subscriber_queue_size: int = Field(default=10_000, ge=1)
    # Protocol-level keep-alive on subscription websockets (ping / "ka"); 0 turns it off.
    ws_keepalive_seconds: float = Field(default=15.0, ge=0)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("log_level", "misfire_policy", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("smtp_url", mode="before")
    @classmethod
    def _empty_smtp_is_unset(cls, value: object) -> object:
        return None if value == "" else value


class SettingsError(Exception):
    """A setting has a bad value; the message names the variable, in one line."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    problems = []
    for detail in error.errors():
        name = ENV_PREFIX + "_".join(str(part) for part in detail["loc"]).upper()
        problems.append(f"{name}: {detail['msg']} (got {detail.get('input')!r})")
    return "invalid setting " + "; ".join(problems)


# ---------------------------------------------------------------- secrets (write-only, redaction)
def secret_values(settings: Settings) -> list[str]:
    """The passwords in the database and SMTP URLs, for the logs to hide wherever they appear
    (the URLs' userinfo is masked as a pattern already; a driver may quote a password alone).
    """
    found: list[str] = []
    for url in (settings.database_url, settings.smtp_url or ""):
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found.extend({password, unquote(password)})
    return found
