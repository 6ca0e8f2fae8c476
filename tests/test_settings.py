"""Settings, logging and the SQLite engine's pragmas."""

from __future__ import annotations

import json
import logging
import os
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest
import sqlalchemy as sa

from gql_scheduler.actions import network_policy
from gql_scheduler.domain.policies import MisfirePolicy
from gql_scheduler.logs import JsonFormatter, RedactingFormatter, configure_logging
from gql_scheduler.settings import LogFormat, SettingsError, load_settings
from gql_scheduler.store.database import Database


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No variable or .env of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("GQL_SCHEDULER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./gql_scheduler.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.enable_shell is False
    assert settings.misfire_policy is MisfirePolicy.RUN_ONCE
    assert settings.lease_seconds == 30
    assert settings.graphiql is True
    assert settings.introspection is True
    assert settings.smtp_url is None
    assert settings.instance_name


def test_every_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/jobs",
        "HOST": "0.0.0.0",
        "PORT": "9000",
        "ENABLE_SHELL": "true",
        "MISFIRE_POLICY": "run_all",
        "MAX_CONCURRENT_EXECUTIONS": "7",
        "LEASE_SECONDS": "12.5",
        "OUTPUT_LIMIT_BYTES": "1024",
        "INSTANCE_NAME": "worker-a",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "json",
        "GRAPHIQL": "false",
        "SMTP_URL": "smtp://127.0.0.1:25",
        "INTROSPECTION": "false",
    }
    for name, value in values.items():
        monkeypatch.setenv(f"GQL_SCHEDULER_{name}", value)
    settings = load_settings()
    assert settings.database_url.endswith("/jobs")
    assert (settings.host, settings.port, settings.enable_shell) == ("0.0.0.0", 9000, True)
    assert settings.misfire_policy is MisfirePolicy.RUN_ALL
    assert (settings.max_concurrent_executions, settings.lease_seconds) == (7, 12.5)
    assert (settings.output_limit_bytes, settings.instance_name) == (1024, "worker-a")
    assert (settings.log_level.value, settings.log_format) == ("DEBUG", LogFormat.JSON)
    assert settings.graphiql is False
    assert settings.smtp_url == "smtp://127.0.0.1:25"
    assert settings.introspection is False


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GQL_SCHEDULER_INSTANCE_NAME=from-dotenv\n")
    assert load_settings().instance_name == "from-dotenv"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("MISFIRE_POLICY", "sometimes"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("LEASE_SECONDS", "0"),
        ("MAX_CONCURRENT_EXECUTIONS", "0"),
        ("LOG_FORMAT", "xml"),
        ("ENABLE_SHELL", "perhaps"),
        ("INTROSPECTION", "sometimes"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"GQL_SCHEDULER_{name}", value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert f"GQL_SCHEDULER_{name}" in message
    assert "\n" not in message


def test_http_networks_are_comma_separated_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().http_deny_networks == network_policy.DEFAULT_DENIED_NETWORKS
    assert load_settings().http_allow_networks == ()
    monkeypatch.setenv("GQL_SCHEDULER_HTTP_DENY_NETWORKS", "10.0.0.0/8, fe80::/10,")
    monkeypatch.setenv("GQL_SCHEDULER_HTTP_ALLOW_NETWORKS", "10.1.2.3")
    settings = load_settings()
    assert settings.http_deny_networks == (IPv4Network("10.0.0.0/8"), IPv6Network("fe80::/10"))
    assert settings.http_allow_networks == (IPv4Network("10.1.2.3/32"),)
    monkeypatch.setenv("GQL_SCHEDULER_HTTP_DENY_NETWORKS", "")  # nothing denied at all
    assert load_settings().http_deny_networks == ()


@pytest.mark.parametrize("name", ["HTTP_DENY_NETWORKS", "HTTP_ALLOW_NETWORKS"])
@pytest.mark.parametrize("value", ["10.0.0.1/8", "10.0.0.0/8, intranet", '["10.0.0.0/8"]'])
def test_a_bad_network_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"GQL_SCHEDULER_{name}", value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"invalid setting GQL_SCHEDULER_{name}: ")
    assert "is not a network in CIDR notation" in message
    assert "\n" not in message


def test_json_log_lines_carry_the_structured_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "gql_scheduler.x", "levelname": "INFO", "msg": "job created", "args": ()}
    )
    record.action = "job_created"
    record.job_id = "j1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job created"
    assert (line["action"], line["job_id"], line["level"]) == ("job_created", "j1", "INFO")


def test_configure_logging_installs_one_handler() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("WARNING", "json")
        configure_logging("WARNING", "json")
        assert len(root.handlers) == 1
        formatter = root.handlers[0].formatter
        assert isinstance(formatter, RedactingFormatter)
        assert isinstance(formatter.inner, JsonFormatter)
        assert root.level == logging.WARNING
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'x.db'}")
    try:
        async with database.read() as connection:
            pragmas = {
                name: await connection.scalar(sa.text(f"PRAGMA {name}"))
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            }
    finally:
        await database.dispose()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 10_000, "foreign_keys": 1}
