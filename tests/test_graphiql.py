"""GraphiQL's page and files as HTTP serves them, and introspection switched off.

What a browser makes of them (nothing external loaded, no policy violation, queries,
subscriptions and the API key) is in test_graphiql_browser.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from gql_scheduler.web import graphiql
from tests import databases
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.live_server import live_server
from tests.ws_client import subscription_client

HTML = {"Accept": "text/html"}
VENDORED_PACKAGES = {"graphiql", "react", "react-dom", "graphql-ws"}
SCHEMA_QUERY = "{ __schema { queryType { name } } }"
TYPE_QUERY = '{ __type(name: "Job") { name } }'


class PageLinks(HTMLParser):
    """The page's scripts (with any inline text) and stylesheets."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.inline_script_text = ""
        self.stylesheets: list[str] = []
        self.inline_styles = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes.get("src"))
            self._in_script = True
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes["href"] or "")
        elif tag == "style" or "style" in attributes:
            self.inline_styles += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_script_text += data.strip()


def policy_of(response: httpx.Response) -> dict[str, list[str]]:
    directives = [part.split() for part in response.headers["content-security-policy"].split(";")]
    return {name: sources for name, *sources in directives}


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    # The page does not depend on the store: one backend is enough here.
    return databases.copy_sqlite_database(sqlite_template, tmp_path / "graphiql.db")


@pytest.fixture
async def client(sqlite_url: str) -> AsyncIterator[GraphQLClient]:
    async with running_client(settings_for(sqlite_url)) as running:
        yield running


async def page_links(client: GraphQLClient) -> PageLinks:
    page = await client.http.get("/graphql", headers=HTML)
    assert page.status_code == 200, page.text
    links = PageLinks()
    links.feed(page.text)
    return links


async def test_page_is_ours_under_a_policy_that_allows_nothing_external(
    client: GraphQLClient,
) -> None:
    page = await client.http.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    policy = policy_of(page)
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["font-src"] == ["'self'", "data:"]
    assert policy["img-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    for directive in ("frame-ancestors", "base-uri", "form-action"):
        assert policy[directive] == ["'none'"], directive

    links = PageLinks()
    links.feed(page.text)
    # No inline script, and every file from this server, relative to the page.
    assert links.inline_script_text == ""
    assert links.inline_styles == 0
    named = [*links.stylesheets, *links.scripts]
    assert named, page.text
    assert all(url is not None and url.startswith("graphql/assets/") for url in named), named


async def test_every_file_the_page_names_is_served_with_its_type_and_a_long_cache(
    client: GraphQLClient,
) -> None:
    links = await page_links(client)
    urls = [*links.stylesheets, *(url for url in links.scripts if url)]
    for url in urls:
        response = await client.http.get(f"/{url}")
        assert response.status_code == 200, url
        expected = "text/css" if url.split("?")[0].endswith(".css") else "text/javascript"
        assert response.headers["content-type"] == f"{expected}; charset=utf-8", url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        # The URL names the file's digest, so a new version is a new URL.
        name, version = url.removeprefix("graphql/assets/").split("?v=")
        assert hashlib.sha256(response.content).hexdigest().startswith(version), name


async def test_served_vendored_files_match_the_manifest(client: GraphQLClient) -> None:
    files = graphiql.vendored_files()
    assert {file.package for file in files} == VENDORED_PACKAGES
    for file in files:
        response = await client.http.get(f"{graphiql.ASSETS_PATH}/{file.name}")
        assert response.status_code == 200, file
        assert hashlib.sha256(response.content).hexdigest() == file.sha256, file


def test_every_vendored_package_ships_its_license() -> None:
    manifest = graphiql.MANIFEST.read_text(encoding="utf-8")
    for package in VENDORED_PACKAGES:
        license_file = graphiql.STATIC / "licenses" / f"{package}.LICENSE"
        found = license_file if license_file.exists() else license_file.with_suffix(".LICENSE.md")
        assert "MIT License" in found.read_text(encoding="utf-8"), package
        assert found.relative_to(graphiql.STATIC).as_posix() in manifest


async def test_unknown_or_escaping_asset_paths_are_not_found(client: GraphQLClient) -> None:
    for path in ("nothing.js", "..%2F..%2Fgraphiql.py", "%2e%2e/%2e%2e/app.py"):
        response = await client.http.get(f"{graphiql.ASSETS_PATH}/{path}")
        assert response.status_code == 404, path
    response = await client.http.post(f"{graphiql.ASSETS_PATH}/setup.js")
    assert response.status_code == 405


async def test_introspection_answers_by_default(client: GraphQLClient) -> None:
    data = await client.data(SCHEMA_QUERY)
    assert data["__schema"]["queryType"]["name"] == "Query"
    assert (await client.data(TYPE_QUERY))["__type"]["name"] == "Job"


async def test_introspection_off_refuses_schema_and_type_with_a_graphql_error(
    sqlite_url: str,
) -> None:
    async with running_client(settings_for(sqlite_url, introspection=False)) as client:
        for query, field in ((SCHEMA_QUERY, "__schema"), (TYPE_QUERY, "__type")):
            body = await client.execute(query)
            assert body.get("data") is None, body
            # One error per introspection field (queryType is a __Type too).
            messages = [error["message"] for error in body["errors"]]
            assert all("introspection has been disabled" in text for text in messages), messages
            assert f"'{field}'" in messages[0], messages
        # The rest of the API answers as before, __typename included.
        data = await client.data("{ __typename jobs { totalCount } }")
        assert data == {"__typename": "Query", "jobs": {"totalCount": 0}}


async def test_introspection_off_turns_graphiql_off(sqlite_url: str) -> None:
    async with running_client(settings_for(sqlite_url, introspection=False)) as client:
        page = await client.http.get("/graphql", headers=HTML)
        assert page.status_code == 404
        assert "graphiql" not in page.text.lower()
        asset = await client.http.get(f"{graphiql.ASSETS_PATH}/setup.js")
        assert asset.status_code == 404


async def test_introspection_off_holds_over_websockets_too(sqlite_url: str) -> None:
    async with (
        live_server(settings_for(sqlite_url, introspection=False)) as server,
        subscription_client(server.ws_url) as websocket,
    ):
        await websocket.subscribe("1", SCHEMA_QUERY)
        message = await websocket.receive()
        assert message["type"] == "error", message
        assert "introspection has been disabled" in message["payload"][0]["message"], message
