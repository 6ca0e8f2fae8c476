"""Settings from the environment and `.env`, all prefixed GQL_SCHEDULER_."""

from __future__ import annotations

import enum
import ipaddress
import os
import socket
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gql_scheduler.actions import network_policy
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


class AuthMode(enum.StrEnum):
    AUTO = "auto"  # required unless the service listens on a loopback address only
    REQUIRED = "required"
    DISABLED = "disabled"


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


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
    # On SIGTERM, how long running executions may go on before they are stopped.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
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
    # How often each instance says it is alive and reads who else is (PostgreSQL): the
    # live instances share the claims out (scheduling/membership.py).
    heartbeat_seconds: float = Field(default=1.0, gt=0)
    # Events older than this are pruned; a subscription cannot resume from before them.
    event_retention_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    # How often the event feed reads the outbox when no broker signal woke it: the safety
    # net under the signals (NOTIFY), while anyone subscribes.
    event_poll_seconds: float = Field(default=1.0, gt=0)
    # Events waiting for one subscriber; past this it is too slow and is closed.
    subscriber_queue_size: int = Field(default=10_000, ge=1)
    # Protocol-level keep-alive on subscription websockets (ping / "ka"); 0 turns it off.
    ws_keepalive_seconds: float = Field(default=15.0, ge=0)

    # ---- authentication and roles
    auth: AuthMode = AuthMode.AUTO
    # How often each instance reads the API keys again (created / revoked keys apply then).
    auth_refresh_seconds: float = Field(default=2.0, gt=0)

    # ---- browsers: other origins, and the Host header
    # Comma-separated origins (https://app.example.com) whose pages may call the API (CORS)
    # and open its websockets; empty: the same origin only; "*": any (only with auth).
    cors_origins: str = ""
    # Comma-separated host names a request may be addressed to (DNS rebinding); empty: the
    # loopback names and HOST; "*": any; "*.example.com": a domain's subdomains.
    allowed_hosts: str = ""

    # -- outbound network policy of HTTP actions (actions/network_policy.py) --
    # Comma-separated CIDRs; the most specific network holding an address decides, the
    # deny list on a tie. NoDecode: a plain list, not the JSON pydantic-settings expects.
    http_deny_networks: Annotated[tuple[network_policy.Network, ...], NoDecode] = (
        network_policy.DEFAULT_DENIED_NETWORKS
    )
    http_allow_networks: Annotated[tuple[network_policy.Network, ...], NoDecode] = ()

    # ---- Request limits (api/limits.py, api/http_errors.py, services/validation.py) ----
    # Bytes of one HTTP request body, and of one websocket message.
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Bytes of one GraphQL document (the `query` string).
    max_query_bytes: int = Field(default=32 * 1024, ge=256)
    # Lexical tokens of one document, counted while parsing (graphql-core's max_tokens).
    max_query_tokens: int = Field(default=3000, ge=50)
    # Nesting of selection sets in one operation.
    max_query_depth: int = Field(default=12, ge=2)
    # Aliased fields in one document.
    max_query_aliases: int = Field(default=30, ge=0)
    # Estimated work of one operation: fields times page sizes, reads weighted (api/costs.py).
    max_query_cost: int = Field(default=10_000, ge=100)
    # Operations open at once on one websocket connection.
    max_subscriptions_per_connection: int = Field(default=50, ge=1)
    # Seconds a websocket may stay open without sending connection_init.
    ws_connection_init_timeout_seconds: float = Field(default=10.0, gt=0)
    # Connections the API may hold (its own pool, apart from the engine's) and how long a
    # request waits for one.
    api_pool_size: int = Field(default=10, ge=1)
    api_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # GraphQL HTTP requests served at once; the rest wait this long, then get 503.
    api_max_concurrent_requests: int = Field(default=64, ge=1)
    api_queue_seconds: float = Field(default=5.0, gt=0)
    # Stored inputs: bytes of a large field (HTTP body or json, handler args, e-mail body,
    # shell command and env together), and characters of a one-line field (cron expression,
    # URL, header, e-mail subject, working directory, pause note).
    max_payload_bytes: int = Field(default=64 * 1024, ge=256)
    max_field_length: int = Field(default=2048, ge=64)

    # ---- GraphiQL and introspection
    # False refuses __schema and __type queries (production), and turns GraphiQL off with
    # them: it cannot work without them.
    introspection: bool = True

    @property
    def graphiql_served(self) -> bool:
        return self.graphiql and self.introspection

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return _comma_list(self.cors_origins)

    @property
    def allowed_host_list(self) -> list[str]:
        listed = _comma_list(self.allowed_hosts)
        if listed:
            return listed
        defaults = ["localhost", "127.0.0.1", "::1", "[::1]"]
        # A wildcard address is no name a client uses: it says nothing of the host's names.
        if self.host not in ("0.0.0.0", "::", "") and self.host.lower() not in defaults:
            defaults.append(self.host.lower())
        return defaults

    @model_validator(mode="after")
    def _any_origin_needs_auth(self) -> Settings:
        if "*" in self.cors_origin_list and not self.auth_required:
            raise ValueError(
                "GQL_SCHEDULER_CORS_ORIGINS: '*' (any origin) is allowed only with "
                "authentication required (GQL_SCHEDULER_AUTH)"
            )
        for origin in self.cors_origin_list:
            if origin != "*" and not _is_origin(origin):
                raise ValueError(
                    f"GQL_SCHEDULER_CORS_ORIGINS: {origin!r} is not an origin "
                    "(scheme://host[:port], nothing after it)"
                )
        return self

    @property
    def auth_required(self) -> bool:
        if self.auth is AuthMode.AUTO:
            return not is_loopback_host(self.host)
        return self.auth is AuthMode.REQUIRED

    @field_validator("log_level", "misfire_policy", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("auth", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("http_deny_networks", "http_allow_networks", mode="before")
    @classmethod
    def _comma_separated_networks(cls, value: object) -> object:
        return network_policy.parse_networks(value) if isinstance(value, str) else value

    @field_validator("smtp_url", mode="before")
    @classmethod
    def _empty_smtp_is_unset(cls, value: object) -> object:
        return None if value == "" else value


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _is_origin(value: str) -> bool:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return False
    plain = not (parts.path.strip("/") or parts.query or parts.fragment or parts.username)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and plain


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
        if not detail["loc"]:  # a check across settings: its message names them
            problems.append(str(detail["msg"]).removeprefix("Value error, "))
            continue
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
