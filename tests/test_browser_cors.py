"""A frontend on its own origin, in a real browser: it queries, mutates and subscribes with
an API key when its origin is listed, and gets nothing through when it is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse, HTMLResponse
from starlette.routing import Route

from gql_scheduler.bench.serving import serving
from gql_scheduler.domain.access import Role
from tests import store_probe
from tests.browser import chromium_page
from tests.graphql_client import settings_for
from tests.live_server import LiveServer, live_server
from tests.node_client import JS_DIR, NodeClientLauncher

pytestmark = pytest.mark.timeout(120)

GRAPHQL_WS_BUNDLE = JS_DIR / "node_modules" / "graphql-ws" / "umd" / "graphql-ws.min.js"

# The frontend: the npm graphql-ws client (its browser build) for the subscription, fetch
# for the rest. Where the API is and which key to use come in the URL's fragment.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>frontend</title>
<script src="/graphql-ws.min.js"></script></head>
<body><pre id="query"></pre><pre id="mutation"></pre><pre id="event"></pre>
<pre id="ws-failed"></pre><pre id="http-failed"></pre>
<script>
const settings = new URLSearchParams(location.hash.slice(1));
const api = settings.get("api"), key = settings.get("key");
const show = (id, value) => { document.getElementById(id).textContent = JSON.stringify(value); };
async function call(query, variables) {
  const response = await fetch(api + "/graphql", {
    method: "POST",
    headers: {"Content-Type": "application/json", "Authorization": "Bearer " + key},
    body: JSON.stringify({query, variables}),
  });
  return response.json();
}
async function main() {
  const client = graphqlWs.createClient({
    url: api.replace("http", "ws") + "/graphql",
    connectionParams: {Authorization: "Bearer " + key},
    retryAttempts: 0,
  });
  client.subscribe(
    {query: "subscription { jobEvents { type job { name } actor } }"},
    {next: (result) => show("event", result),
     error: (error) => show("ws-failed", String(error.code || error.type || error)),
     complete: () => {}},
  );
  // Connected, or refused: the HTTP calls are tried either way.
  await new Promise((resolve) => {
    client.on("connected", resolve);
    client.on("closed", resolve);
  });
  show("query", await call("{ jobs(first: 5) { totalCount } }"));
  show("mutation", await call(
    "mutation($input: CreateJobInput!) "
      + "{ createJob(input: $input) { job { name } errors { code } } }",
    {input: {name: "from-the-frontend", schedules: [{cron: {expression: "0 9 * * 1"}}],
             action: {handler: {name: "noop"}}}},
  ));
}
main().catch((error) => show("http-failed", String(error)));
</script></body></html>
"""


@asynccontextmanager
async def frontend() -> AsyncIterator[int]:
    """The frontend's own server, on its own port: another origin than the API's."""

    async def page(_request: object) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def bundle(_request: object) -> FileResponse:
        return FileResponse(GRAPHQL_WS_BUNDLE, media_type="text/javascript")

    app = Starlette(routes=[Route("/", page), Route("/graphql-ws.min.js", bundle)])
    async with serving(app) as port:
        yield port


@asynccontextmanager
async def api(database_url: str, cors_origins: str) -> AsyncIterator[tuple[LiveServer, str]]:
    settings = settings_for(database_url, auth="required", cors_origins=cors_origins)
    async with live_server(settings) as server:
        _, secret = await server.container.api_keys.create("frontend", Role.ADMIN)
        await server.container.api_keys.refresh()
        yield server, secret


@pytest.fixture
def graphql_ws_bundle(node_client: NodeClientLauncher) -> Path:
    """The npm graphql-ws client's browser build (node_client's fixture installed it)."""
    assert GRAPHQL_WS_BUNDLE.is_file()
    return GRAPHQL_WS_BUNDLE


@pytest.mark.usefixtures("graphql_ws_bundle")
async def test_a_listed_origin_queries_mutates_and_subscribes(database_url: str) -> None:
    async with frontend() as port:
        origin = f"http://127.0.0.1:{port}"
        async with api(database_url, cors_origins=origin) as (server, secret), chromium_page() as b:
            await b.page.goto(f"{origin}/#api={server.base_url}&key={secret}")
            event = b.page.locator("#event")
            await event.filter(has_text="from-the-frontend").wait_for()
            assert '"totalCount":0' in (await b.page.locator("#query").text_content() or "")
            mutation = await b.page.locator("#mutation").text_content()
            assert '"name":"from-the-frontend"' in (mutation or "")
            assert '"actor":"frontend"' in (await event.text_content() or "")
            for failure in ("#ws-failed", "#http-failed"):
                assert await b.page.locator(failure).text_content() == ""
            assert b.external == []


@pytest.mark.usefixtures("graphql_ws_bundle")
async def test_an_unlisted_origin_gets_nothing_through(database_url: str) -> None:
    async with frontend() as port:
        listed = f"http://127.0.0.1:{port}"
        # The same page from http://localhost:<port> is another origin than the listed one.
        async with api(database_url, cors_origins=listed) as (server, secret), chromium_page() as b:
            await b.page.goto(f"http://localhost:{port}/#api={server.base_url}&key={secret}")
            await b.page.locator("#http-failed").filter(has_text="Failed to fetch").wait_for()
            assert await b.page.locator("#ws-failed").text_content() != ""
            assert await b.page.locator("#event").text_content() == ""
            assert await b.page.locator("#mutation").text_content() == ""
            # The preflight was refused, so the mutation was never sent.
            assert (await store_probe.table_counts(server.container.database))["jobs"] == 0
