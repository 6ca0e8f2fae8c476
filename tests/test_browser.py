"""The browser harness itself: Chromium starts, reaches 127.0.0.1, and nothing else."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from gql_scheduler.bench.serving import LOCALHOST, serving
from tests.browser import chromium_page, is_loopback

# Chromium's start takes seconds on a busy machine.
pytestmark = pytest.mark.timeout(120)

PAGE = """<!doctype html>
<title>harness</title>
<p id="greeting">served from 127.0.0.1</p>
<img src="http://example.invalid/pixel.png">
<script src="https://cdn.example.invalid/library.js"></script>
"""


async def page(_request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def test_page_loads_from_loopback_and_external_requests_are_refused() -> None:
    app = Starlette(routes=[Route("/", page)])
    async with serving(app) as port, chromium_page() as browser:
        await browser.page.goto(f"http://{LOCALHOST}:{port}/", wait_until="load")
        assert await browser.page.text_content("#greeting") == "served from 127.0.0.1"
    assert sorted(browser.external) == [
        "http://example.invalid/pixel.png",
        "https://cdn.example.invalid/library.js",
    ]


def test_only_loopback_hosts_count_as_local() -> None:
    assert is_loopback("http://127.0.0.1:8000/graphql")
    assert is_loopback("ws://localhost:1/graphql")
    assert is_loopback("data:text/plain,x")
    assert not is_loopback("https://cdn.example.invalid/graphiql")
    assert not is_loopback("http://127.0.0.1.example.com/")
