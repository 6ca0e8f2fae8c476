"""The request limits' settings: sane defaults, and a bad value stops start-up naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gql_scheduler.settings import SettingsError, load_settings

LIMIT_VARIABLES = [
    "MAX_REQUEST_BYTES",
    "MAX_QUERY_BYTES",
    "MAX_QUERY_TOKENS",
    "MAX_QUERY_DEPTH",
    "MAX_QUERY_ALIASES",
    "MAX_QUERY_COST",
    "MAX_SUBSCRIPTIONS_PER_CONNECTION",
    "WS_CONNECTION_INIT_TIMEOUT_SECONDS",
    "API_POOL_SIZE",
    "API_POOL_TIMEOUT_SECONDS",
    "MAX_PAYLOAD_BYTES",
    "MAX_FIELD_LENGTH",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("GQL_SCHEDULER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.max_request_bytes == 1024 * 1024
    assert settings.max_query_depth == 12
    assert settings.max_query_cost == 10_000
    assert settings.api_pool_size == 10


@pytest.mark.parametrize("name", LIMIT_VARIABLES)
def test_every_limit_is_read(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(f"GQL_SCHEDULER_{name}", "5000")
    assert getattr(load_settings(), name.lower()) == 5000


@pytest.mark.parametrize("name", LIMIT_VARIABLES)
@pytest.mark.parametrize("value", ["-1", "lots"])
def test_a_bad_limit_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"GQL_SCHEDULER_{name}", value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert f"GQL_SCHEDULER_{name}" in message
    assert "\n" not in message
