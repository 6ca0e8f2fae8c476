"""Write-only values in actions: secret headers, env values and bodies.

A secret is stored and sent for real and never read back, not even to an admin. A client
that changes a job without knowing its secrets names them with no value (or with the mask it
read back), and `keep_stored_secrets` carries the stored values over.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gql_scheduler.domain import redaction
from gql_scheduler.domain.actions import (
    MASK,
    Action,
    EmailAction,
    HandlerAction,
    HttpAction,
    ShellAction,
    is_hidden_header,
)
from gql_scheduler.domain.errors import ErrorCollector, InvalidInput, UserInputError

# Stands for "the stored value" in an action built from a request, until
# `keep_stored_secrets` replaces it. No real value can equal it: headers and env values
# refuse NUL, and a body equal to it would be absurd.
KEEP_STORED = "\0gql-scheduler:keep-the-stored-secret\0"


def is_kept(value: str | None) -> bool:
    """Whether a secret's value, as a client sent it, asks to keep the stored one."""
    return value is None or value in (MASK, KEEP_STORED)


@dataclass(frozen=True, slots=True)
class ShownEnvVar:
    name: str
    value: str  # MASK when hidden
    secret: bool


# ---------------------------------------------------------------- read-back


def shown_env(action: ShellAction) -> list[ShownEnvVar]:
    """Env variables as the API shows them: values hidden unless the job marked them public
    and their names do not look secret."""
    public = set(action.public_env)
    shown = []
    for name, value in (action.env or {}).items():
        hidden = name not in public or redaction.looks_secret(name)
        shown.append(ShownEnvVar(name, MASK if hidden else value, hidden))
    return shown


def shown_body(action: HttpAction) -> tuple[str | None, Any]:
    """(body, json) as the API shows them: MASK when secret, secret-looking JSON keys masked."""
    if action.body_secret:
        return (
            None if action.body is None else MASK,
            None if action.json is None else MASK,
        )
    return action.body, redaction.masked_json(action.json)


def secret_values(action: Action) -> list[str]:
    """Every value read-back hides, so that logs and error texts can hide them too."""
    match action:
        case HttpAction():
            found = redaction.url_secrets(action.url)
            found.extend(header.value for header in action.headers if is_hidden_header(header))
            if action.body_secret:
                found.extend([action.body or "", *redaction.json_leaves(action.json)])
            else:
                found.extend(redaction.json_secrets(action.json))
            return found
        case ShellAction():
            return [item.value for item in _hidden_env(action)]
        case HandlerAction() | EmailAction():
            return []


def _hidden_env(action: ShellAction) -> list[ShownEnvVar]:
    env = action.env or {}
    return [ShownEnvVar(v.name, env[v.name], True) for v in shown_env(action) if v.secret]


# ---------------------------------------------------------------- changes


def keep_stored_secrets(
    action: Action, stored: Action | None
) -> tuple[Action, list[UserInputError]]:
    """`action` with each kept secret replaced by the stored one of the same name, and a
    problem (field paths as in validate_action) for each kept value with nothing stored to
    keep: a new secret needs its value."""
    found = ErrorCollector()
    if isinstance(action, HttpAction):
        previous = stored if isinstance(stored, HttpAction) else None
        action = _keep_http(action, previous, found)
    elif isinstance(action, ShellAction):
        previous_env = stored.env if isinstance(stored, ShellAction) else None
        action = _keep_env(action, previous_env or {}, found)
    return action, found.errors


def _keep_http(action: HttpAction, stored: HttpAction | None, found: ErrorCollector) -> HttpAction:
    stored_headers = {h.name.lower(): h.value for h in stored.headers} if stored else {}
    headers = []
    for index, header in enumerate(action.headers):
        if header.value != KEEP_STORED:
            headers.append(header)
            continue
        value = stored_headers.get(header.name.lower())
        if value is None:
            found.add(_new_secret_without_value("http", "headers", str(index), "value"))
        headers.append(dataclasses.replace(header, value=value or ""))
    action = dataclasses.replace(action, headers=tuple(headers))
    if action.body != KEEP_STORED:
        return action
    if stored is None or not stored.body_secret or (stored.body is None and stored.json is None):
        message = "there is no stored secret body to keep: give body or json"
        found.add(InvalidInput(message, field=["http", "body"]))
        return dataclasses.replace(action, body=None)
    return dataclasses.replace(action, body=stored.body, json=stored.json)


def _keep_env(action: ShellAction, stored: dict[str, str], found: ErrorCollector) -> ShellAction:
    if action.env is None or not isinstance(action.env, dict):
        return action
    env = {}
    for name, value in action.env.items():
        if value != KEEP_STORED:
            env[name] = value
        elif name in stored:
            env[name] = stored[name]
        else:
            found.add(_new_secret_without_value("shell", "env", name))
    return dataclasses.replace(action, env=env)


def _new_secret_without_value(*field: str) -> InvalidInput:
    message = "a new secret needs its value (only a stored secret may be kept by leaving it out)"
    return InvalidInput(message, field=field)
