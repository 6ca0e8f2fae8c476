"""Action validation (every rule, with exact field paths and codes), masking and storage."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from gql_scheduler.actions.registry import HandlerRegistry
from gql_scheduler.domain.actions import (
    MASK,
    Action,
    EmailAction,
    HandlerAction,
    HandlerCatalog,
    Header,
    HttpAction,
    HttpMethod,
    ShellAction,
    action_from_dict,
    action_kind,
    action_to_dict,
    is_secret_header,
    masked_headers,
    masked_url,
    validate_action,
)
from gql_scheduler.domain.errors import ErrorCode, UserInputError

INVALID = ErrorCode.INVALID
DISABLED = ErrorCode.DISABLED

# The real registry: its built-in names and arg rules are what the API validates against.
CATALOG: HandlerCatalog = HandlerRegistry.with_builtins()


def problems(
    action: Action, *, shell_enabled: bool = True, email_enabled: bool = True
) -> list[UserInputError]:
    return validate_action(
        action, shell_enabled=shell_enabled, email_enabled=email_enabled, handlers=CATALOG
    )


def codes_and_fields(errors: list[UserInputError]) -> list[tuple[ErrorCode, tuple[str, ...]]]:
    return [(error.code, error.field or ()) for error in errors]


VALID_ACTIONS: list[Any] = [
    pytest.param(HttpAction(url="https://example.com/hook"), id="http-minimal"),
    pytest.param(
        HttpAction(
            url="http://10.0.0.5:8080/health?verbose=1#top",
            method=HttpMethod.GET,
            headers=(Header("Authorization", "Bearer s3cret"), Header("X-Request-Id", "")),
            success_statuses=(200, 204, 100, 599),
        ),
        id="http-get-headers-statuses",
    ),
    pytest.param(
        HttpAction(url="HTTPS://[::1]/x", json={"nested": [1, None, "a"]}), id="http-json"
    ),
    pytest.param(
        HttpAction(url="https://example.com", method=HttpMethod.PUT, body=""), id="http-body"
    ),
    pytest.param(
        ShellAction(("echo", "hi there"), env={"LANG": "C", "EMPTY": ""}, working_directory="/"),
        id="shell-full",
    ),
    pytest.param(ShellAction(("true",)), id="shell-minimal"),
    pytest.param(HandlerAction("noop"), id="handler-noop"),
    pytest.param(HandlerAction("echo", {"anything": ["goes", 1, 2.5]}), id="handler-echo"),
    pytest.param(HandlerAction("sleep", {"seconds": 0}), id="handler-sleep-zero"),
    pytest.param(HandlerAction("sleep", {"seconds": 86400}), id="handler-sleep-max"),
    pytest.param(HandlerAction("sleep", {"seconds": 1.5}), id="handler-sleep-float"),
    pytest.param(HandlerAction("fail"), id="handler-fail-no-args"),
    pytest.param(HandlerAction("fail", {"message": "boom"}), id="handler-fail-message"),
    pytest.param(
        EmailAction(
            to=("ops@example.com", "first.last+tag@mail.example.co.uk", "x@xn--80ak6aa92e.com"),
            subject="Nightly report",
            body="<p>ok</p>",
            html=True,
        ),
        id="email",
    ),
]


@pytest.mark.parametrize("action", VALID_ACTIONS)
def test_valid_actions_have_no_problems(action: Action) -> None:
    assert problems(action) == []


Expected = list[tuple[ErrorCode, tuple[str, ...]]]


def http(**fields: Any) -> HttpAction:
    return HttpAction(**{"url": "https://example.com", **fields})


def sleep(args: Any) -> HandlerAction:
    return HandlerAction("sleep", args)


def mail(to: tuple[str, ...] = ("ops@example.com",), subject: str = "Hi") -> EmailAction:
    return EmailAction(to=to, subject=subject, body="body")


INVALID_ACTIONS: list[Any] = [
    # http: url
    *(
        pytest.param(http(url=url), [(INVALID, ("http", "url"))], id=f"http-url-{url!r}")
        for url in (
            "ftp://x",
            "not a url",
            "http://",
            "",
            "example.com/path",
            "http://exa mple.com",
            "http://example.com/\n",
            "http://host:abc/",
            "http://[::1",
            "javascript:alert(1)",
        )
    ),
    # http: body and json, GET/HEAD bodies, statuses, headers
    pytest.param(http(body="a", json={"a": 1}), [(INVALID, ("http", "json"))], id="body+json"),
    pytest.param(
        http(method=HttpMethod.GET, body="a"), [(INVALID, ("http", "body"))], id="get-body"
    ),
    pytest.param(
        http(method=HttpMethod.HEAD, json=[1]), [(INVALID, ("http", "json"))], id="head-json"
    ),
    pytest.param(http(json=math.nan), [(INVALID, ("http", "json"))], id="json-nan"),
    pytest.param(
        http(success_statuses=(200, 99, 600, 599)),
        [
            (INVALID, ("http", "success_statuses", "1")),
            (INVALID, ("http", "success_statuses", "2")),
        ],
        id="statuses",
    ),
    pytest.param(
        http(
            headers=(
                Header("X-Ok", "fine"),
                Header("Bad Header", "v"),
                Header("", "v"),
                Header("X-Split", "a\r\nInjected: 1"),
                Header("X-Nul", "a\0b"),
                Header("X:Colon", "v"),
            )
        ),
        [
            (INVALID, ("http", "headers", "1", "name")),
            (INVALID, ("http", "headers", "2", "name")),
            (INVALID, ("http", "headers", "3", "value")),
            (INVALID, ("http", "headers", "4", "value")),
            (INVALID, ("http", "headers", "5", "name")),
        ],
        id="headers",
    ),
    pytest.param(
        HttpAction(
            url="ftp://x",
            method=HttpMethod.GET,
            headers=(Header("a b", "c\n"),),
            body="b",
            json={},
            success_statuses=(0,),
        ),
        [
            (INVALID, ("http", "url")),
            (INVALID, ("http", "headers", "0", "name")),
            (INVALID, ("http", "headers", "0", "value")),
            (INVALID, ("http", "json")),
            (INVALID, ("http", "body")),
            (INVALID, ("http", "json")),
            (INVALID, ("http", "success_statuses", "0")),
        ],
        id="http-every-problem-at-once",
    ),
    # shell
    pytest.param(ShellAction(()), [(INVALID, ("shell", "command"))], id="shell-empty"),
    pytest.param(ShellAction(("",)), [(INVALID, ("shell", "command", "0"))], id="shell-no-prog"),
    pytest.param(
        ShellAction(("echo", "a\0b")), [(INVALID, ("shell", "command", "1"))], id="shell-nul"
    ),
    *(
        pytest.param(ShellAction(("env",), env=env), [(INVALID, ("shell", "env"))], id=name)
        for name, env in (
            ("env-list", ["A=1"]),
            ("env-string", "A=1"),
            ("env-int-value", {"A": 1}),
            ("env-null-value", {"A": None}),
            ("env-equals-in-name", {"A=B": "x"}),
            ("env-empty-name", {"": "x"}),
            ("env-nul-value", {"A": "x\0"}),
        )
    ),
    pytest.param(
        ShellAction(("ls",), env={"A": 1, "B": 2}),  # env comes from a JSON scalar
        [(INVALID, ("shell", "env")), (INVALID, ("shell", "env"))],
        id="env-each-bad-entry",
    ),
    pytest.param(
        ShellAction(("ls",), working_directory="relative/dir"),
        [(INVALID, ("shell", "working_directory"))],
        id="shell-relative-dir",
    ),
    # handler
    pytest.param(HandlerAction("nope"), [(INVALID, ("handler", "name"))], id="handler-unknown"),
    pytest.param(HandlerAction(""), [(INVALID, ("handler", "name"))], id="handler-empty-name"),
    pytest.param(sleep(None), [(INVALID, ("handler", "args"))], id="sleep-no-args"),
    pytest.param(sleep(5), [(INVALID, ("handler", "args"))], id="sleep-not-object"),
    pytest.param(sleep({}), [(INVALID, ("handler", "args", "seconds"))], id="sleep-missing"),
    *(
        pytest.param(
            sleep({"seconds": seconds}),
            [(INVALID, ("handler", "args", "seconds"))],
            id=f"sleep-seconds-{seconds!r}",
        )
        for seconds in (-1, 86400.5, "5", True, None, [1])
    ),
    *(
        pytest.param(
            sleep({"seconds": seconds}),
            [(INVALID, ("handler", "args")), (INVALID, ("handler", "args", "seconds"))],
            id=f"sleep-{seconds}-is-not-json-either",
        )
        for seconds in (math.nan, math.inf)
    ),
    pytest.param(
        sleep({"seconds": 1, "second": 2}),
        [(INVALID, ("handler", "args", "second"))],
        id="sleep-unknown-key",
    ),
    pytest.param(
        HandlerAction("fail", {"message": 3}),
        [(INVALID, ("handler", "args", "message"))],
        id="fail-message-not-string",
    ),
    pytest.param(
        HandlerAction("fail", "boom"), [(INVALID, ("handler", "args"))], id="fail-not-object"
    ),
    # email
    pytest.param(mail(to=()), [(INVALID, ("email", "to"))], id="email-no-recipients"),
    pytest.param(
        mail(
            to=(
                "ok@example.com",
                "not-an-email",
                "a@b",
                "a b@c.com",
                "Name <x@example.com>",
                "x@example.com, y@example.com",
                "x@-bad.com",
                "x..y@example.com",
                ".x@example.com",
                "x@example.c0m",
                "",
                "x@example.com\r\nBcc: evil@example.com",
                "a" * 65 + "@example.com",
            )
        ),
        [(INVALID, ("email", "to", str(index))) for index in range(1, 13)],
        id="email-bad-recipients",
    ),
    pytest.param(mail(subject=""), [(INVALID, ("email", "subject"))], id="subject-empty"),
    pytest.param(mail(subject="  "), [(INVALID, ("email", "subject"))], id="subject-blank"),
    pytest.param(
        mail(subject="Hi\r\nBcc: evil@example.com"),
        [(INVALID, ("email", "subject"))],
        id="subject-injection",
    ),
    pytest.param(mail(subject="a\nb"), [(INVALID, ("email", "subject"))], id="subject-lf"),
]


@pytest.mark.parametrize(("action", "expected"), INVALID_ACTIONS)
def test_invalid_actions_report_every_problem_with_its_path(
    action: Action, expected: Expected
) -> None:
    assert codes_and_fields(problems(action)) == expected


def test_shell_is_refused_when_disabled_and_says_how_to_enable_it() -> None:
    errors = problems(ShellAction(("true",)), shell_enabled=False)
    assert codes_and_fields(errors) == [(DISABLED, ("shell",))]
    assert "GQL_SCHEDULER_ENABLE_SHELL" in errors[0].message


def test_disabled_shell_still_reports_the_other_problems() -> None:
    errors = problems(ShellAction(()), shell_enabled=False)
    assert codes_and_fields(errors) == [(DISABLED, ("shell",)), (INVALID, ("shell", "command"))]


def test_email_is_refused_when_disabled_and_names_the_setting() -> None:
    errors = problems(mail(), email_enabled=False)
    assert codes_and_fields(errors) == [(DISABLED, ("email",))]
    assert "GQL_SCHEDULER_SMTP_URL" in errors[0].message


def test_flags_only_affect_their_own_kind() -> None:
    for action in (http(), HandlerAction("noop")):
        assert problems(action, shell_enabled=False, email_enabled=False) == []


def test_unknown_handler_lists_the_registered_names_sorted() -> None:
    [error] = problems(HandlerAction("x"))
    assert error.message == "unknown handler 'x'; registered handlers: echo, fail, noop, sleep"


def test_unknown_handler_with_an_empty_catalog() -> None:
    errors = validate_action(
        HandlerAction("x"), shell_enabled=True, email_enabled=True, handlers=HandlerRegistry()
    )
    assert errors[0].message == "unknown handler 'x'; registered handlers: (none)"


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "Cookie",
        "SET-COOKIE",
        "X-Api-Key",
        "X-Auth-Token",
        "X-Client-Secret",
        "X-Password",
        "X-Goog-AuthUser",
        "apikey",
        "X-Hub-Signature-256",
        "X-Signature",
        "X-Vault-Pass",
        "X-Pwd",
        "X-Session-Id",
        "X-Amz-Credential",
    ],
)
def test_secret_header_names(name: str) -> None:
    assert is_secret_header(name)


@pytest.mark.parametrize(
    "name", ["Content-Type", "Accept", "User-Agent", "X-Request-Id", "Keep-Alive"]
)
def test_ordinary_header_names(name: str) -> None:
    assert not is_secret_header(name)


def test_masked_headers_hide_secret_values_only_and_keep_order() -> None:
    headers = (
        Header("Content-Type", "application/json"),
        Header("Authorization", "Bearer abc"),
        Header("X-Api-Key", "k"),
    )
    assert masked_headers(headers) == (
        Header("Content-Type", "application/json"),
        Header("Authorization", MASK, secret=True),
        Header("X-Api-Key", MASK, secret=True),
    )
    assert MASK == "***"


# ---------------------------------------------------------------- storage


def test_action_kind() -> None:
    assert [
        action_kind(action)
        for action in (http(), ShellAction(("ls",)), HandlerAction("noop"), mail())
    ] == ["http", "shell", "handler", "email"]


@pytest.mark.parametrize("action", VALID_ACTIONS)
def test_dict_round_trip_through_json_is_exact(action: Action) -> None:
    stored = action_to_dict(action)
    assert stored["kind"] == action_kind(action)
    # json.dumps proves the stored form is JSON-safe; loads turns tuples into lists.
    assert action_from_dict(json.loads(json.dumps(stored, allow_nan=False))) == action


def test_stored_form_keeps_real_header_values() -> None:
    stored = action_to_dict(http(headers=(Header("Authorization", "Bearer abc"),)))
    assert stored["headers"] == [{"name": "Authorization", "value": "Bearer abc"}]
    assert stored["method"] == "POST"


def test_stored_form_does_not_share_mutable_values_with_the_action() -> None:
    action = HandlerAction("echo", {"items": [1]})
    action_to_dict(action)["args"]["items"].append(2)
    assert action.args == {"items": [1]}


def test_unknown_stored_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown action kind 'carrier-pigeon'"):
        action_from_dict({"kind": "carrier-pigeon"})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.test/hook", "https://example.test/hook"),
        ("https://bot:s3cret@example.test/x", "https://***@example.test/x"),
        # A token given as the user name is the whole secret.
        ("https://ghp_token@example.test/x", "https://***@example.test/x"),
        ("https://a:b:c@example.test:8443/x", "https://***@example.test:8443/x"),
        (
            "https://example.test/x?page=2&access_token=t&API_KEY=k&flag",
            "https://example.test/x?page=2&access_token=***&API_KEY=***&flag",
        ),
        (
            "https://example.test/x?sig=a&pwd=b&code=c&X-Amz-Signature=d&sessionid=e&n=1",
            "https://example.test/x?sig=***&pwd=***&code=***&X-Amz-Signature=***&sessionid=***&n=1",
        ),
        ("https://example.test/x?q=token", "https://example.test/x?q=token"),
        ("http://u:p@127.0.0.1/x?secret=s#frag", "http://***@127.0.0.1/x?secret=***#frag"),
    ],
)
def test_masked_url_hides_userinfo_and_secret_parameters_only(url: str, shown: str) -> None:
    assert masked_url(url) == shown
