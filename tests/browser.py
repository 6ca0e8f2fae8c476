"""Browser tests: Debian's Chromium driven by Playwright, kept off the network.

`chromium_page()` launches /usr/bin/chromium (never Playwright's own browser download, which
cannot be fetched here) in a fresh profile and gives one page in a new context. Every
request and websocket to a host other than 127.0.0.1 or localhost is refused and recorded
in `BrowserPage.external`, so that a page that reaches for a CDN fails its test instead of
passing on a machine that happens to be online. Console messages and uncaught script
errors are recorded too; Chromium reports a Content-Security-Policy violation on the console.

A missing Chromium fails the test (it never skips): install it as .ci/run does.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    WebSocketRoute,
    async_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
# Bounds every Playwright wait (a click, a selector, a navigation) below the test's own
# timeout, so that a stuck page fails with Playwright's message rather than pytest-timeout's.
ACTION_TIMEOUT_MS = 20_000
LAUNCH_TIMEOUT_MS = 60_000


@dataclass
class BrowserPage:
    page: Page
    context: BrowserContext
    # URLs the page tried to reach beyond the loopback interface (all refused).
    external: list[str] = field(default_factory=list)
    console: list[ConsoleMessage] = field(default_factory=list)
    # Uncaught exceptions in the page's scripts.
    errors: list[str] = field(default_factory=list)

    @property
    def console_text(self) -> list[str]:
        return [f"{message.type}: {message.text}" for message in self.console]

    @property
    def csp_violations(self) -> list[str]:
        """Chromium reports each blocked load or inline script on the console."""
        return [text for text in self.console_text if "Content Security Policy" in text]


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True  # made inside the page, nothing leaves the machine
    return parts.hostname in LOOPBACK_HOSTS


def require_chromium() -> None:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"browser tests need Debian's Chromium at {CHROMIUM}: install it with "
            "`apt-get install chromium` (.ci/run does when it is missing)",
            pytrace=False,
        )


@asynccontextmanager
async def chromium_page() -> AsyncIterator[BrowserPage]:
    """A page in a fresh browser, closed (browser and driver) when the block ends."""
    require_chromium()
    async with async_playwright() as playwright:
        # launch() gives the browser a new temporary profile, removed when it closes.
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            context = await browser.new_context()
            context.set_default_timeout(ACTION_TIMEOUT_MS)
            opened = BrowserPage(page=await context.new_page(), context=context)
            await _keep_off_the_network(opened)
            # A function of ours: Playwright cannot wrap a builtin like list.append.
            opened.page.on("console", lambda message: opened.console.append(message))
            opened.page.on("pageerror", lambda error: opened.errors.append(str(error)))
            yield opened
        finally:
            await browser.close()


async def _keep_off_the_network(opened: BrowserPage) -> None:
    async def refuse(route: Route) -> None:
        opened.external.append(route.request.url)
        await route.abort("blockedbyclient")

    async def refuse_websocket(route: WebSocketRoute) -> None:
        opened.external.append(route.url)
        await route.close()

    def is_external(url: str) -> bool:
        return not is_loopback(url)

    # Loopback traffic is not routed at all: it reaches the server untouched.
    await opened.context.route(is_external, refuse)
    await opened.context.route_web_socket(is_external, refuse_websocket)
