"""Redaction as pure logic: name heuristics, text patterns, known values, the log formatter."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
import pytest

from gql_scheduler.actions.http import describe_error
from gql_scheduler.domain import action_secrets, redaction
from gql_scheduler.domain.actions import Header, HttpAction, ShellAction
from gql_scheduler.logs import JsonFormatter, RedactingFormatter
from gql_scheduler.settings import Settings, secret_values
from gql_scheduler.store.database import create_engine


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("GET http://user:pw@h:1/p", "GET http://***@h:1/p"),
        (
            "to postgresql+asyncpg://postgres:pw@127.0.0.1/db",
            "to postgresql+asyncpg://***@127.0.0.1/db",
        ),
        ("https://ghp_tok@github.com/x.git", "https://***@github.com/x.git"),
        # Every query value in a log line, whatever its name.
        ('"POST /hook?sig=abc&n=1 HTTP/1.1"', '"POST /hook?sig=***&n=*** HTTP/1.1"'),
        ('{"url": "http://h/x?s=v"}', '{"url": "http://h/x?s=***"}'),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic dXNlcjpwYXNz"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("key gqls_AbC123_xyz used", "key gqls_*** used"),
        ("nothing to hide here: a=1 b?", "nothing to hide here: a=1 b?"),
    ],
)
def test_text_patterns(text: str, shown: str) -> None:
    assert redaction.redact_patterns(text) == shown


def test_known_secrets_are_replaced_in_every_usual_encoding() -> None:
    known = redaction.KnownSecrets()
    known.register(['p@ss "w/rd" é', "short", "abcdef", "abcdefgh"])
    text = 'raw p@ss "w/rd" é, url p%40ss%20%22w%2Frd%22%20%C3%A9, json p@ss \\"w/rd\\" \\u00e9'
    assert known.redact(text) == "raw ***, url ***, json ***"
    # The longer one is replaced whole; values under six characters are not registered.
    assert known.redact("abcdefgh abcdef short") == "*** *** short"
    known.clear()
    assert known.redact("abcdef") == "abcdef"


def test_json_body_masking_is_recursive() -> None:
    body = {"a": 1, "Token": "t", "nested": [{"client_secret": {"x": 1}}, {"ok": "v"}]}
    assert redaction.masked_json(body) == {
        "a": 1,
        "Token": "***",
        "nested": [{"client_secret": "***"}, {"ok": "v"}],
    }
    assert sorted(redaction.json_secrets(body)) == ["1", "t"]


def test_secret_values_are_everything_read_back_hides() -> None:
    http = HttpAction(
        url="https://u1:p1@h/x?sig=s1&page=2",
        headers=(Header("X-Plain", "v1", secret=True), Header("Cookie", "c1"), Header("A", "a")),
        body="b1",
        body_secret=True,
    )
    assert sorted(action_secrets.secret_values(http)) == ["b1", "c1", "p1", "s1", "u1", "v1"]
    shell = ShellAction(
        ("true",), env={"A": "1", "B": "2", "C_TOKEN": "3"}, public_env=("B", "C_TOKEN")
    )
    # Public unless its name looks secret: the heuristics are a backstop on explicit choices.
    assert action_secrets.secret_values(shell) == ["1", "3"]


def test_keep_stored_secrets_takes_the_stored_value_by_name() -> None:
    keep = action_secrets.KEEP_STORED
    stored = HttpAction(
        url="http://h/", headers=(Header("X-Sig", "real", secret=True),), body="b", body_secret=True
    )
    sent = HttpAction(
        url="http://h/2", headers=(Header("x-sig", keep, secret=True),), body=keep, body_secret=True
    )
    kept, problems = action_secrets.keep_stored_secrets(sent, stored)
    assert problems == []
    assert kept == HttpAction(
        url="http://h/2",
        headers=(Header("x-sig", "real", secret=True),),
        body="b",
        body_secret=True,
    )
    _, problems = action_secrets.keep_stored_secrets(sent, None)
    assert [list(problem.field or ()) for problem in problems] == [
        ["http", "headers", "0", "value"],
        ["http", "body"],
    ]


def test_settings_secrets_are_the_url_passwords() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://postgres:db%2Fpass@127.0.0.1/x",
        smtp_url="smtp://mailer:smtp-pass@127.0.0.1:25",
    )
    assert sorted(secret_values(settings)) == ["db%2Fpass", "db/pass", "smtp-pass"]


# ---------------------------------------------------------------- the log formatter


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "httpx", "levelno": logging.INFO, "levelname": "INFO"})
    made.msg, made.args = message, args
    made.__dict__.update(extra)
    return made


@pytest.fixture
def known() -> redaction.KnownSecrets:
    secrets = redaction.KnownSecrets()
    secrets.register(["s3cret-value", "tok-123456"])
    return secrets


def test_formatter_redacts_arguments_extras_and_exceptions(known: redaction.KnownSecrets) -> None:
    formatter = RedactingFormatter(JsonFormatter(), known)
    try:
        raise ValueError("failed with s3cret-value at http://u:p@h/?token=tok-123456")
    except ValueError:
        failed = record("HTTP Request: %s %s", "GET", "http://a:b@h/x?x=1", header="tok-123456")
        failed.exc_info = sys.exc_info()
    line = formatter.format(failed)
    entry = json.loads(line)
    assert entry["message"] == "HTTP Request: GET http://***@h/x?x=***"
    assert entry["header"] == "***"
    assert "ValueError: failed with *** at http://***@h/?token=***" in entry["exception"]
    for secret in ("s3cret-value", "tok-123456", "a:b", "u:p"):
        assert secret not in line


def test_text_formatter_lines_are_redacted_too(known: redaction.KnownSecrets) -> None:
    formatter = RedactingFormatter(logging.Formatter("%(name)s: %(message)s"), known)
    line = formatter.format(record("sent %r", {"X-Sig": "s3cret-value"}))
    assert line == "httpx: sent {'X-Sig': '***'}"


def test_the_process_registry_is_the_default() -> None:
    formatter = RedactingFormatter(logging.Formatter("%(message)s"))
    assert formatter.secrets is redaction.known_secrets


# ---------------------------------------------------------------- where texts are built


def test_http_errors_that_quote_the_url_are_redacted() -> None:
    error = httpx.ConnectError("cannot reach http://bot:pw-123456@h:1/x?sig=abcdef")
    assert describe_error(error) == "connection failed: cannot reach http://***@h:1/x?sig=***"


def test_sql_is_logged_without_its_parameters(tmp_path: Path) -> None:
    for url in (f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "postgresql+asyncpg://u:p@127.0.0.1/x"):
        engine = create_engine(url)
        assert engine.sync_engine.hide_parameters is True
        engine.sync_engine.dispose()
