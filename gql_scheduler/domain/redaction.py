"""Hiding secrets: on read-back (masking by name) and in any text (logs, error messages).

Two nets. Names: header names, query parameters and JSON keys that look secret have their
values masked, and every URL's userinfo is. Literals: a process-wide registry of the values
known to be secret (fed as jobs are stored and loaded, and from the server's own settings)
is replaced wherever it appears, in whatever encoding a log line is likely to carry it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"

# A word anywhere in the name: X-Hub-Signature-256, X-Vault-Pass, access_token, apikey.
_SECRET_NAME_PARTS = (
    "token",
    "secret",
    "pass",
    "pwd",
    "auth",
    "key",
    "sig",
    "cookie",
    "session",
    "credential",
    "private",
)
_SECRET_NAMES = frozenset({"proxy-authorization", "set-cookie"})
# Query parameters only: an OAuth authorization `code`, one-time passwords.
_SECRET_PARAMETER_NAMES = frozenset({"code", "otp"})
# Registering very short values would redact ordinary words and numbers in every log line.
MIN_REGISTERED_LENGTH = 6


def looks_secret(name: str) -> bool:
    """Whether a header, env variable or JSON key of this name probably holds a secret."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_NAME_PARTS)


def looks_secret_parameter(name: str) -> bool:
    """Whether a URL query parameter of this (raw, possibly %-encoded) name looks secret."""
    decoded = unquote(name)
    return decoded.lower() in _SECRET_PARAMETER_NAMES or looks_secret(decoded)


# ---------------------------------------------------------------- read-back


def masked_url(url: str) -> str:
    """The URL as the API shows it: its whole userinfo (a token is often the user name) and
    the values of secret-looking query parameters replaced by MASK; the rest stays readable
    so that its owner recognizes it."""
    parts = urlsplit(url)
    _, at, host = parts.netloc.rpartition("@")
    netloc = f"{MASK}@{host}" if at else parts.netloc
    query = "&".join(_masked_parameter(pair) for pair in parts.query.split("&"))
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return parts._replace(netloc=netloc, query=query).geturl()


def _masked_parameter(pair: str) -> str:
    name, equals, _ = pair.partition("=")
    return f"{name}={MASK}" if equals and looks_secret_parameter(name) else pair


def masked_json(value: Any) -> Any:
    """A copy of a JSON value with the values of secret-looking keys, at any depth, masked."""
    if isinstance(value, dict):
        return {
            key: MASK if looks_secret(str(key)) else masked_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked_json(item) for item in value]
    return value


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL as read-back masks them: userinfo and secret parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        found.extend(item for item in userinfo.split(":", 1) if item)
    for pair in parts.query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and looks_secret_parameter(name):
            found.append(value)
    return found


def json_secrets(value: Any) -> list[str]:
    """The string and number leaves under secret-looking keys, at any depth."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(json_leaves(item) if looks_secret(str(key)) else json_secrets(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(json_secrets(item))
    return found


def json_leaves(value: Any) -> list[str]:
    """Every string and number in a JSON value, as text."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in json_leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in json_leaves(item)]
    if isinstance(value, bool) or value is None:
        return []
    return [str(value)]


# ---------------------------------------------------------------- any text

# scheme://userinfo@ -- the userinfo may hold a password, or be a token itself.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@\s\"'<>]+@")
# Every query value in logs, whatever its name: a line in a log is never where a value is
# needed, and a secret under an innocent name (?s=, ?x=) would get through a list of names.
_QUERY_VALUE = re.compile(r"(?P<name>[?&;][A-Za-z0-9_.~%\-\[\]]+=)[^&#\s\"'<>\\]+")
_BEARER = re.compile(r"(?P<scheme>\bBearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_BASIC = re.compile(r"(?P<scheme>\bBasic\s+)[A-Za-z0-9+/]{8,}=*")
# API keys of this service (gqls_...) wherever they appear, with or without Bearer.
_API_KEY = re.compile(r"\bgqls_[A-Za-z0-9_\-]{6,}")


def redact_patterns(text: str) -> str:
    """`text` with URL userinfo, query values, bearer/basic credentials and API keys masked."""
    text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    text = _QUERY_VALUE.sub(rf"\g<name>{MASK}", text)
    text = _BEARER.sub(rf"\g<scheme>{MASK}", text)
    text = _BASIC.sub(rf"\g<scheme>{MASK}", text)
    return _API_KEY.sub(f"gqls_{MASK}", text)


class KnownSecrets:
    """Secret values this process knows of, replaced literally wherever they appear.

    Each value is also looked for as it appears %-encoded in a URL and escaped inside a JSON
    string, the two ways a log line most often carries it. Values are never forgotten: a
    secret replaced by a new one may still show up in a late log line about an older run.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        # Compiled on the next redaction, not on every registration: loading 10,000 jobs
        # with secrets must not compile a growing pattern 10,000 times.
        self._stale = False
        self._lock = threading.Lock()  # logging runs in driver and server threads too

    def register(self, values: Iterable[str]) -> None:
        fresh = {
            form
            for value in values
            if len(value) >= MIN_REGISTERED_LENGTH
            for form in _forms(value)
            if form not in self._values
        }
        if not fresh:
            return
        with self._lock:
            self._values |= fresh
            self._stale = True

    def redact(self, text: str) -> str:
        if self._stale:
            self._compile()
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def _compile(self) -> None:
        with self._lock:
            if not self._stale:
                return
            # Longest first, so that a secret containing another is replaced whole.
            alternatives = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, alternatives)))
            self._stale = False

    def clear(self) -> None:
        """Forget every value (for tests that need a registry of their own)."""
        with self._lock:
            self._values.clear()
            self._pattern = None
            self._stale = False


def _forms(value: str) -> set[str]:
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""), unquote(value)}
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return {form for form in forms if len(form) >= MIN_REGISTERED_LENGTH}


# The process's registry: fed by the store and the composition root, read by logging.
known_secrets = KnownSecrets()


def redact(text: str, secrets: KnownSecrets = known_secrets) -> str:
    """`text` with every known secret and every secret-looking pattern masked."""
    return redact_patterns(secrets.redact(text))
