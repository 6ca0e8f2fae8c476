"""What a job runs: an HTTP request, a process, a registered Python handler or an e-mail.

Validation returns every problem at once, each with a field path relative to the GraphQL
`ActionInput` (`["http", "url"]`, `["email", "to", "1"]`), so a client can mark all of them.
Stored actions keep real secret values; read-back masks them (domain/action_secrets.py).
"""

from __future__ import annotations

import copy
import enum
import json as jsonlib
import os
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Protocol, assert_never
from urllib.parse import urlsplit

from gql_scheduler.domain import redaction
from gql_scheduler.domain.errors import Disabled, ErrorCollector, InvalidInput, UserInputError


class HttpMethod(enum.StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str
    secret: bool = False  # write-only: sent for real, never read back


@dataclass(frozen=True, slots=True)
class HttpAction:
    url: str
    method: HttpMethod = HttpMethod.POST
    headers: tuple[Header, ...] = ()
    body: str | None = None
    json: Any = None
    success_statuses: tuple[int, ...] = ()  # empty means any 2xx
    body_secret: bool = False  # body and json are write-only


@dataclass(frozen=True, slots=True)
class ShellAction:
    command: tuple[str, ...]
    env: dict[str, str] | None = None
    working_directory: str | None = None
    # Env values are write-only unless named here: the environment is where secrets go.
    public_env: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HandlerAction:
    name: str
    args: Any = None


@dataclass(frozen=True, slots=True)
class EmailAction:
    to: tuple[str, ...]
    subject: str
    body: str
    html: bool = False


Action = HttpAction | ShellAction | HandlerAction | EmailAction


def action_kind(action: Action) -> str:
    """The ActionInput field that holds this action: "http", "shell", "handler" or "email"."""
    match action:
        case HttpAction():
            return "http"
        case ShellAction():
            return "shell"
        case HandlerAction():
            return "handler"
        case EmailAction():
            return "email"
        case _:
            assert_never(action)


class HandlerCatalog(Protocol):
    """What validation needs from the handler registry, without importing the actions layer."""

    def names(self) -> Collection[str]: ...

    def validate_args(self, name: str, args: Any) -> list[UserInputError]:
        """Problems in `args` for handler `name`, with field paths relative to the args."""
        ...


# ---------------------------------------------------------------- validation

SHELL_ENV_SWITCH = "GQL_SCHEDULER_ENABLE_SHELL"
SMTP_URL_SETTING = "GQL_SCHEDULER_SMTP_URL"

# RFC 9110 `token`: the characters allowed in a header field name.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAKS = re.compile(r"[\r\n]")
# Deliberately narrower than RFC 5322: dot-atom local part, dotted domain of LDH labels and
# an alphabetic (or punycode) top-level label. Quoted local parts and IP literals are refused.
_EMAIL_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
)
_MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit, less the angle brackets
_MAX_LOCAL_PART_LENGTH = 64


def validate_action(
    action: Action, *, shell_enabled: bool, email_enabled: bool, handlers: HandlerCatalog
) -> list[UserInputError]:
    """Every problem in `action`; an empty list means it may be stored and run."""
    match action:
        case HttpAction():
            return _validate_http(action)
        case ShellAction():
            return _validate_shell(action, enabled=shell_enabled)
        case HandlerAction():
            return _validate_handler(action, handlers)
        case EmailAction():
            return _validate_email(action, enabled=email_enabled)
        case _:
            assert_never(action)


def _validate_http(action: HttpAction) -> list[UserInputError]:
    errors = ErrorCollector()
    url_problem = _http_url_problem(action.url)
    if url_problem:
        errors.add(InvalidInput(url_problem, field=["http", "url"]))
    for index, header in enumerate(action.headers):
        errors.extend(_header_problems(header), "http", "headers", str(index))
    if action.body is not None and action.json is not None:
        errors.add(InvalidInput("set body or json, not both", field=["http", "json"]))
    if action.json is not None and not _is_json_safe(action.json):
        errors.add(InvalidInput("must be JSON (no NaN or infinity)", field=["http", "json"]))
    if action.method in (HttpMethod.GET, HttpMethod.HEAD):
        # Servers and proxies may drop or reject a GET/HEAD body; refuse it up front.
        for name, value in (("body", action.body), ("json", action.json)):
            if value is not None:
                message = f"a {action.method} request cannot have a {name}"
                errors.add(InvalidInput(message, field=["http", name]))
    for index, status in enumerate(action.success_statuses):
        if not 100 <= status <= 599:
            message = f"{status} is not an HTTP status (100-599)"
            errors.add(InvalidInput(message, field=["http", "success_statuses", str(index)]))
    return errors.errors


def _http_url_problem(url: str) -> str | None:
    if any(char.isspace() or ord(char) < 0x20 for char in url):
        return "a URL must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- evaluated only because it raises on a malformed port
    except ValueError as error:
        return f"not a valid URL: {error}"
    if parts.scheme.lower() not in ("http", "https"):
        return "the URL must start with http:// or https://"
    if not parts.hostname:
        return "the URL has no host"
    return None


def _header_problems(header: Header) -> list[UserInputError]:
    problems: list[UserInputError] = []
    if not _HEADER_NAME.fullmatch(header.name):
        problems.append(InvalidInput("not a valid HTTP header name", field=["name"]))
    if _LINE_BREAKS.search(header.value) or "\0" in header.value:
        message = "a header value must not contain line breaks or NUL"
        problems.append(InvalidInput(message, field=["value"]))
    return problems


def _validate_shell(action: ShellAction, *, enabled: bool) -> list[UserInputError]:
    errors = ErrorCollector()
    if not enabled:
        message = f"shell actions are disabled; the server must set {SHELL_ENV_SWITCH}=true"
        errors.add(Disabled(message, field=["shell"]))
    if not action.command:
        errors.add(InvalidInput("the command must not be empty", field=["shell", "command"]))
    elif not action.command[0]:
        message = "the program (first item) must not be empty"
        errors.add(InvalidInput(message, field=["shell", "command", "0"]))
    for index, argument in enumerate(action.command):
        if "\0" in argument:
            message = "must not contain a NUL character"
            errors.add(InvalidInput(message, field=["shell", "command", str(index)]))
    for env_problem in _shell_env_problems(action.env):
        errors.add(InvalidInput(env_problem, field=["shell", "env"]))
    directory = action.working_directory
    if directory is not None and (not os.path.isabs(directory) or "\0" in directory):
        message = "must be an absolute path"
        errors.add(InvalidInput(message, field=["shell", "working_directory"]))
    return errors.errors


def _shell_env_problems(env: object) -> list[str]:
    # Typed as `object`: env arrives as a GraphQL JSON scalar, so any JSON value can get here.
    if env is None:
        return []
    if not isinstance(env, dict):
        return ["env must be a JSON object of string names to string values"]
    problems = []
    for name, value in env.items():
        if not isinstance(name, str) or not isinstance(value, str):
            problems.append(f"env entry {name!r} must map a string name to a string value")
        # The OS cannot represent these in an environment block.
        elif not name or "=" in name or "\0" in name or "\0" in value:
            problems.append(f"env entry {name!r} must have a non-empty name and no '=' or NUL")
    return problems


def _validate_handler(action: HandlerAction, handlers: HandlerCatalog) -> list[UserInputError]:
    known = handlers.names()
    if action.name not in known:
        listed = ", ".join(sorted(known)) or "(none)"
        message = f"unknown handler {action.name!r}; registered handlers: {listed}"
        return [InvalidInput(message, field=["handler", "name"])]
    errors = ErrorCollector()
    if not _is_json_safe(action.args):
        errors.add(InvalidInput("must be JSON (no NaN or infinity)", field=["handler", "args"]))
    errors.extend(handlers.validate_args(action.name, action.args), "handler", "args")
    return errors.errors


def _validate_email(action: EmailAction, *, enabled: bool) -> list[UserInputError]:
    errors = ErrorCollector()
    if not enabled:
        message = f"e-mail actions are disabled; the server must set {SMTP_URL_SETTING}"
        errors.add(Disabled(message, field=["email"]))
    if not action.to:
        errors.add(InvalidInput("give at least one recipient", field=["email", "to"]))
    for index, address in enumerate(action.to):
        if not is_plausible_email(address):
            message = f"{address!r} is not an e-mail address like name@example.com"
            errors.add(InvalidInput(message, field=["email", "to", str(index)]))
    if not action.subject.strip():
        errors.add(InvalidInput("the subject must not be empty", field=["email", "subject"]))
    elif _LINE_BREAKS.search(action.subject):
        # A line break in a header would let the subject inject further headers.
        message = "the subject must not contain line breaks"
        errors.add(InvalidInput(message, field=["email", "subject"]))
    return errors.errors


def is_plausible_email(address: str) -> bool:
    """A bare `local@domain.tld` address: no display name, comments, spaces or quoting."""
    if len(address) > _MAX_EMAIL_LENGTH or not _EMAIL_ADDRESS.fullmatch(address):
        return False
    if len(address.rpartition("@")[0]) > _MAX_LOCAL_PART_LENGTH:
        return False
    # The stdlib parser must read the same single address back, with no display name.
    return parseaddr(address) == ("", address)


def _is_json_safe(value: object) -> bool:
    try:
        jsonlib.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------- masking for read-back

MASK = redaction.MASK
is_secret_header = redaction.looks_secret
masked_url = redaction.masked_url


def masked_headers(headers: Iterable[Header]) -> tuple[Header, ...]:
    """Headers as the API shows them: secret and secret-looking values replaced by MASK."""
    return tuple(
        Header(header.name, MASK, secret=True) if is_hidden_header(header) else header
        for header in headers
    )


def is_hidden_header(header: Header) -> bool:
    return header.secret or redaction.looks_secret(header.name)


# ---------------------------------------------------------------- storage


def action_to_dict(action: Action) -> dict[str, Any]:
    """A JSON-safe dict with a "kind" key; `action_from_dict` gives the same action back."""
    match action:
        case HttpAction():
            return {
                "kind": "http",
                "url": action.url,
                "method": action.method.value,
                "headers": [_header_to_dict(header) for header in action.headers],
                "body": action.body,
                "json": copy.deepcopy(action.json),
                "success_statuses": list(action.success_statuses),
                "body_secret": action.body_secret,
            }
        case ShellAction():
            return {
                "kind": "shell",
                "command": list(action.command),
                "env": dict(action.env) if action.env is not None else None,
                "working_directory": action.working_directory,
                "public_env": list(action.public_env),
            }
        case HandlerAction():
            return {"kind": "handler", "name": action.name, "args": copy.deepcopy(action.args)}
        case EmailAction():
            return {
                "kind": "email",
                "to": list(action.to),
                "subject": action.subject,
                "body": action.body,
                "html": action.html,
            }
        case _:
            assert_never(action)


def _header_to_dict(header: Header) -> dict[str, Any]:
    stored: dict[str, Any] = {"name": header.name, "value": header.value}
    if header.secret:
        stored["secret"] = True
    return stored


def action_from_dict(data: dict[str, Any]) -> Action:
    kind = data["kind"]
    if kind == "http":
        return HttpAction(
            url=data["url"],
            method=HttpMethod(data["method"]),
            headers=tuple(
                Header(h["name"], h["value"], secret=h.get("secret", False))
                for h in data["headers"]
            ),
            body=data["body"],
            json=copy.deepcopy(data["json"]),
            success_statuses=tuple(data["success_statuses"]),
            # Absent from actions stored before secrets were marked.
            body_secret=data.get("body_secret", False),
        )
    if kind == "shell":
        env = data["env"]
        return ShellAction(
            command=tuple(data["command"]),
            env=dict(env) if env is not None else None,
            working_directory=data["working_directory"],
            public_env=tuple(data.get("public_env", ())),
        )
    if kind == "handler":
        return HandlerAction(name=data["name"], args=copy.deepcopy(data["args"]))
    if kind == "email":
        return EmailAction(
            to=tuple(data["to"]), subject=data["subject"], body=data["body"], html=data["html"]
        )
    raise ValueError(f"unknown action kind {kind!r}")
