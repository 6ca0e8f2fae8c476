"""E-mail actions: one message through the SMTP server named by the server's SMTP URL.

`smtp://[user:pass@]host[:port]` is plain SMTP (port 25), `smtp+starttls://` upgrades with
STARTTLS and requires it (port 587), `smtps://` is TLS from the start (port 465). The query
parameter `from` sets the sender; `timeout` (seconds) bounds each SMTP step.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from gql_scheduler.actions.base import ActionResult, OutputSink, OutputStream, RunContext
from gql_scheduler.domain.actions import EmailAction

DEFAULT_SENDER = "gql-scheduler@localhost"
DEFAULT_TIMEOUT_SECONDS = 30.0
_SCHEMES = {
    # scheme: (default port, implicit TLS, STARTTLS)
    "smtp": (25, False, False),
    "smtp+starttls": (587, False, True),
    "smtps": (465, True, False),
}


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    hostname: str
    port: int
    use_tls: bool
    start_tls: bool
    username: str | None = None
    password: str | None = None
    sender: str = DEFAULT_SENDER
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def __repr__(self) -> str:
        # Never print the password (settings objects end up in logs and tracebacks).
        return f"SmtpSettings({self.hostname}:{self.port}, sender={self.sender!r})"


def parse_smtp_url(url: str) -> SmtpSettings:
    """Raises ValueError for a URL this runner cannot use, so a bad setting fails at start."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"the SMTP URL must start with one of {', '.join(_SCHEMES)}://")
    if not parts.hostname:
        raise ValueError("the SMTP URL has no host")
    default_port, use_tls, start_tls = _SCHEMES[scheme]
    query = parse_qs(parts.query)
    return SmtpSettings(
        hostname=parts.hostname,
        port=parts.port or default_port,  # .port raises ValueError on a bad port
        use_tls=use_tls,
        start_tls=start_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        sender=query.get("from", [DEFAULT_SENDER])[-1],
        timeout=float(query.get("timeout", [DEFAULT_TIMEOUT_SECONDS])[-1]),
    )


class EmailRunner:
    def __init__(self, smtp_url: str) -> None:
        self._settings = parse_smtp_url(smtp_url)

    @property
    def settings(self) -> SmtpSettings:
        return self._settings

    async def run(
        self, action: EmailAction, context: RunContext, output: OutputSink
    ) -> ActionResult:
        try:
            message = build_message(action, sender=self._settings.sender)
        except ValueError as error:  # e.g. a line break in the subject
            return ActionResult(succeeded=False, error=f"invalid message: {error}")
        try:
            refused, _ = await self._send(message)
        except aiosmtplib.SMTPException as error:
            return ActionResult(succeeded=False, error=describe_smtp_error(error))
        except OSError as error:  # a TLS failure during STARTTLS is not wrapped by aiosmtplib
            return ActionResult(succeeded=False, error=f"SMTP connection failed: {error}")
        accepted = [address for address in action.to if address not in refused]
        await output.write(OutputStream.STDOUT, f"sent to {', '.join(accepted)}")
        if refused:
            # Some recipients got it; a retry would send it to them again, but the job's
            # author must still hear that the others did not.
            responses = (f"{r.code} {r.message} ({a})" for a, r in refused.items())
            return ActionResult(succeeded=False, error=_one_line("; ".join(responses)))
        return ActionResult(succeeded=True)

    async def _send(self, message: EmailMessage) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
        settings = self._settings
        return await aiosmtplib.send(
            message,
            hostname=settings.hostname,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            use_tls=settings.use_tls,
            # False rather than None for plain smtp://: None would try STARTTLS whenever the
            # server offers it, and fail on the certificate of a server meant to be plain.
            start_tls=settings.start_tls,
            timeout=settings.timeout,
        )


def build_message(action: EmailAction, *, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(action.to)
    message["Subject"] = action.subject
    message.set_content(action.body, subtype="html" if action.html else "plain")
    return message


def describe_smtp_error(error: aiosmtplib.SMTPException) -> str:
    """One line: `550 mailbox unavailable (b@y.com)`, `SMTP timed out: ...`."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return _one_line("; ".join(_response_text(refusal) for refusal in error.recipients))
    if isinstance(error, aiosmtplib.SMTPTimeoutError):
        return _one_line(f"SMTP timed out: {error.message}")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return _response_text(error)
    if isinstance(error, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return _one_line(f"SMTP connection failed: {error.message}")
    return _one_line(f"SMTP error: {error.message}")


def _response_text(error: aiosmtplib.SMTPResponseException) -> str:
    text = f"{error.code} {error.message}"
    if isinstance(error, aiosmtplib.SMTPRecipientRefused):
        text += f" ({error.recipient})"
    return _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())
