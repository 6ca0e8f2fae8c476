"""GraphiQL in a real browser against the real server, with no way out to the network.

Chromium (tests/browser.py) refuses every request to a host other than 127.0.0.1 and
records it: the page works only if everything it needs comes from the service itself.
Queries are typed into GraphiQL's editors and run with its button, as a person would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.async_api import Page, Request, WebSocket, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from gql_scheduler.domain.access import Role
from tests import databases, queries
from tests.browser import BrowserPage, chromium_page
from tests.engine_helpers import poll
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server

# Chromium's start and GraphiQL's first render take seconds on a busy machine.
pytestmark = pytest.mark.timeout(120)

JOBS_QUERY = "{ jobs(first: 5) { edges { node { name } } } }"
JOB_EVENTS = "subscription { jobEvents { type job { name } } }"
WITHIN = 10.0
T = TypeVar("T")


@dataclass
class Traffic:
    """What the page sent to the server: HTTP GraphQL requests and websocket frames."""

    posts: list[Request] = field(default_factory=list)
    websockets: list[WebSocket] = field(default_factory=list)
    frames: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def watch(self, page: Page) -> None:
        page.on("request", self._on_request)
        page.on("websocket", self._on_websocket)

    def _on_request(self, request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/graphql"):
            self.posts.append(request)

    def _on_websocket(self, websocket: WebSocket) -> None:
        self.websockets.append(websocket)
        sent = self.frames.setdefault(websocket.url + f"#{len(self.websockets)}", [])
        websocket.on("framesent", lambda payload: sent.append(json.loads(payload)))

    def connection_inits(self) -> list[dict[str, Any]]:
        """The connection_init payload of each websocket, in the order they opened."""
        return [
            message["payload"]
            for frames in self.frames.values()
            for message in frames
            if message["type"] == "connection_init"
        ]

    def posted(self, query: str) -> list[Request]:
        return [post for post in self.posts if (post.post_data_json or {}).get("query") == query]


class GraphiQL:
    """GraphiQL 3's page, driven through its editors and its run button."""

    def __init__(self, browser: BrowserPage) -> None:
        self.browser = browser
        self.page = browser.page
        self.response = self.page.locator(".graphiql-response")

    async def open(self, server: LiveServer) -> None:
        await self.page.goto(f"{server.base_url}/graphql")
        try:
            await self.page.locator(".graphiql-query-editor .CodeMirror").wait_for()
        except PlaywrightTimeoutError:
            raise AssertionError(
                f"GraphiQL did not start; refused: {self.browser.external}; "
                f"console: {self.browser.console_text}; errors: {self.browser.errors}"
            ) from None

    async def _replace_text(self, editor: str, text: str) -> None:
        await self.page.locator(f"{editor} .CodeMirror").click()
        await self.page.keyboard.press("Control+A")
        # As pasted: typing key by key would meet the editor's closing brackets.
        await self.page.keyboard.insert_text(text)

    async def set_query(self, query: str) -> None:
        await self._replace_text(".graphiql-query-editor", query)

    async def set_headers(self, headers: dict[str, str]) -> None:
        await self.page.get_by_role("button", name="Headers").click()
        visible = ".graphiql-editor-tool .graphiql-editor:not(.hidden)"
        await self._replace_text(visible, json.dumps(headers))

    async def run(self) -> None:
        """Run the query; while a subscription runs, the same button stops it."""
        await self.page.locator(".graphiql-execute-button").click()


@pytest.fixture
async def server(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[LiveServer]:
    # The page does not depend on the store: SQLite is enough here.
    url = databases.copy_sqlite_database(sqlite_template, tmp_path / "browser.db")
    async with live_server(settings_for(url)) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[BrowserPage]:
    async with chromium_page() as opened:
        yield opened


async def create_job(server: LiveServer, name: str) -> None:
    data = await server.data(queries.CREATE_JOB, {"input": queries.job_input(name)})
    assert data["createJob"]["errors"] == [], data


async def until_subscribed(server: LiveServer, count: int) -> None:
    async def subscribers() -> int:
        return server.container.feed.subscriber_count

    await poll(subscribers, lambda seen: seen == count, within=WITHIN)


async def until_seen(observe: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Playwright reports frames and closes as events, which may trail the server's view."""

    async def observed() -> T:
        return observe()

    return await poll(observed, done, within=WITHIN)


def assert_clean(browser: BrowserPage) -> None:
    assert browser.external == [], browser.external
    assert browser.csp_violations == [], browser.csp_violations
    assert browser.errors == [], browser.errors


async def test_graphiql_runs_a_query_with_nothing_from_outside(
    server: LiveServer, browser: BrowserPage
) -> None:
    await create_job(server, "browser-job")
    graphiql = GraphiQL(browser)
    await graphiql.open(server)
    await graphiql.set_query(JOBS_QUERY)
    await graphiql.run()
    await expect(graphiql.response).to_contain_text('"name": "browser-job"')
    assert_clean(browser)


async def test_graphiql_runs_a_subscription_over_the_websocket(
    server: LiveServer, browser: BrowserPage
) -> None:
    traffic = Traffic()
    traffic.watch(browser.page)
    graphiql = GraphiQL(browser)
    await graphiql.open(server)
    await graphiql.set_query(JOB_EVENTS)
    await graphiql.run()
    await until_subscribed(server, count=1)
    await create_job(server, "live-job")
    await expect(graphiql.response).to_contain_text('"name": "live-job"')

    (websocket,) = traffic.websockets
    assert websocket.url == server.ws_url
    (frames,) = traffic.frames.values()
    assert [message["type"] for message in frames[:2]] == ["connection_init", "subscribe"]
    assert frames[1]["payload"]["query"] == JOB_EVENTS
    assert traffic.posted(JOB_EVENTS) == []  # never over HTTP
    await graphiql.run()  # stops it
    await until_subscribed(server, count=0)
    assert_clean(browser)


async def test_graphiql_sends_the_headers_over_http_and_the_api_key_in_connection_init(
    server: LiveServer, browser: BrowserPage
) -> None:
    traffic = Traffic()
    traffic.watch(browser.page)
    graphiql = GraphiQL(browser)
    await graphiql.open(server)
    await graphiql.set_headers({"Authorization": "Bearer first-key", "X-Note": "from-graphiql"})
    await graphiql.set_query(JOBS_QUERY)
    await graphiql.run()
    await expect(graphiql.response).to_contain_text('"edges": []')
    (post,) = traffic.posted(JOBS_QUERY)
    headers = await post.all_headers()
    assert headers["authorization"] == "Bearer first-key"
    assert headers["x-note"] == "from-graphiql"

    await graphiql.set_query(JOB_EVENTS)
    await graphiql.run()
    await until_subscribed(server, count=1)
    # Only the API key goes into connection_init: a websocket has no headers of its own.
    inits = await until_seen(traffic.connection_inits, lambda seen: len(seen) == 1)
    assert inits == [{"Authorization": "Bearer first-key"}]
    await graphiql.run()  # stops it
    await until_subscribed(server, count=0)

    # A new key: the next subscription opens a new websocket that sends it.
    await graphiql.set_headers({"Authorization": "Bearer second-key"})
    await graphiql.set_query(JOB_EVENTS)
    await graphiql.run()
    await until_subscribed(server, count=1)
    inits = await until_seen(traffic.connection_inits, lambda seen: len(seen) == 2)
    assert inits == [{"Authorization": "Bearer first-key"}, {"Authorization": "Bearer second-key"}]
    # The first key's websocket is gone, not left open beside the new one.
    await until_seen(lambda: traffic.websockets[0].is_closed(), bool)
    assert_clean(browser)


async def test_graphiql_works_with_api_keys_required_once_the_key_is_set(
    sqlite_template: Path, tmp_path: Path, browser: BrowserPage
) -> None:
    url = databases.copy_sqlite_database(sqlite_template, tmp_path / "secured.db")
    settings = settings_for(url, auth="required", auth_refresh_seconds=0.2)
    async with live_server(settings) as server:
        keys = server.container.api_keys
        _, viewer = await keys.create("graphiql-viewer", Role.VIEWER)
        _, admin = await keys.create("job-maker", Role.ADMIN)
        await keys.refresh()
        graphiql = GraphiQL(browser)
        await graphiql.open(server)  # the page itself needs no key: it is where one is typed
        await graphiql.set_query(JOBS_QUERY)
        await graphiql.run()
        await expect(graphiql.response).to_contain_text("UNAUTHENTICATED")

        await graphiql.set_headers({"Authorization": f"Bearer {viewer}"})
        await graphiql.run()
        await expect(graphiql.response).to_contain_text('"edges": []')
        # The server admits the websocket only with the key in connection_init (4401 else).
        await graphiql.set_query(JOB_EVENTS)
        await graphiql.run()
        await until_subscribed(server, count=1)
        created = await server.http.post(
            "/graphql",
            json={"query": queries.CREATE_JOB, "variables": {"input": queries.job_input("keyed")}},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert created.json()["data"]["createJob"]["errors"] == [], created.text
        await expect(graphiql.response).to_contain_text('"name": "keyed"')
        await graphiql.run()  # stops it
        await until_subscribed(server, count=0)
    assert browser.external == [], browser.external
    assert browser.csp_violations == [], browser.csp_violations
