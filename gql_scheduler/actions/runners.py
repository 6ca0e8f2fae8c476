"""The one ActionRunner the dispatcher uses: picks the runner for each kind of action."""

from __future__ import annotations

import dataclasses
from typing import assert_never

import httpx

from gql_scheduler.actions.base import ActionResult, OutputSink, RunContext
from gql_scheduler.actions.email import EmailRunner
from gql_scheduler.actions.handler import HandlerRunner
from gql_scheduler.actions.http import DEFAULT_MAX_BODY_BYTES, HttpRunner
from gql_scheduler.actions.registry import HandlerRegistry
from gql_scheduler.actions.shell import DEFAULT_KILL_GRACE_SECONDS, ShellRunner
from gql_scheduler.domain import redaction
from gql_scheduler.domain.actions import (
    Action,
    EmailAction,
    HandlerAction,
    HttpAction,
    ShellAction,
)

SHELL_DISABLED = "shell is disabled on this server"
EMAIL_DISABLED = "email is disabled on this server"


class ActionRunners:
    """Implements ActionRunner. Shell and e-mail are optional: without them such an action
    fails at run time too (validation refuses them, but a job may predate the setting)."""

    def __init__(
        self,
        *,
        http: HttpRunner,
        handler: HandlerRunner,
        shell: ShellRunner | None = None,
        email: EmailRunner | None = None,
    ) -> None:
        self._http = http
        self._handler = handler
        self._shell = shell
        self._email = email

    @classmethod
    def create(
        cls,
        *,
        handlers: HandlerRegistry,
        http_client: httpx.AsyncClient,
        smtp_url: str | None,
        shell_enabled: bool,
        shell_kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
        http_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> ActionRunners:
        """`http_client` stays the caller's to close; a bad `smtp_url` raises ValueError."""
        shell = ShellRunner(kill_grace_seconds=shell_kill_grace_seconds) if shell_enabled else None
        return cls(
            http=HttpRunner(http_client, max_body_bytes=http_max_body_bytes),
            handler=HandlerRunner(handlers),
            shell=shell,
            email=EmailRunner(smtp_url) if smtp_url else None,
        )

    async def run(self, action: Action, context: RunContext, output: OutputSink) -> ActionResult:
        result = await self._run(action, context, output)
        if result.error is None:
            return result
        # The error is read back and logged; a runner may have built it from the URL, the
        # command or a library message quoting either. (The output is the target's own.)
        return dataclasses.replace(result, error=redaction.redact(result.error))

    async def _run(self, action: Action, context: RunContext, output: OutputSink) -> ActionResult:
        match action:
            case HttpAction():
                return await self._http.run(action, context, output)
            case HandlerAction():
                return await self._handler.run(action, context, output)
            case ShellAction():
                if self._shell is None:
                    return ActionResult(succeeded=False, error=SHELL_DISABLED)
                return await self._shell.run(action, context, output)
            case EmailAction():
                if self._email is None:
                    return ActionResult(succeeded=False, error=EMAIL_DISABLED)
                return await self._email.run(action, context, output)
            case _:
                assert_never(action)

    async def aclose(self) -> None:
        """Lets process-group kills that outlived their run finish (the client is not ours)."""
        if self._shell is not None:
            await self._shell.aclose()
