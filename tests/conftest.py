from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from gql_scheduler.store import migrations
from tests import databases
from tests.graphql_client import GraphQLClient, running_client, settings_for
from tests.live_server import LiveServer, live_server
from tests.node_client import NodeClientLauncher, install_packages
from tests.tcp_proxy import TcpProxy, tcp_proxy

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    if databases.postgres_skipped():
        return False
    problem = databases.check_postgres()
    if problem:
        pytest.fail(
            f"PostgreSQL is required at {databases.postgres_admin_url()} ({problem}). "
            f"Start it, point {databases.POSTGRES_URL_VARIABLE} at one, or set "
            f"{databases.SKIP_POSTGRES_VARIABLE}=1 to skip its tests on this machine.",
            pytrace=False,
        )
    return True


@pytest.fixture
def empty_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool
) -> Iterator[str]:
    """An empty database of the backend named by the test's `backend` parameter."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield databases.sqlite_url(tmp_path / "empty.db")
        return
    if not postgres_available:
        pytest.skip(f"{databases.SKIP_POSTGRES_VARIABLE}=1")
    url = databases.create_postgres_database()
    try:
        yield url
    finally:
        databases.drop_postgres_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrations.upgrade(databases.sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_available: bool) -> Iterator[str | None]:
    if not postgres_available:
        yield None
        return
    url = databases.create_postgres_database()
    try:
        migrations.upgrade(url)
        yield make_url(url).database
    finally:
        databases.drop_postgres_database(url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """A migrated database, fresh for this test, on SQLite and on PostgreSQL."""
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        yield databases.copy_sqlite_database(template, tmp_path / "test.db")
        return
    template_name = request.getfixturevalue("postgres_template")
    if template_name is None:
        pytest.skip(f"{databases.SKIP_POSTGRES_VARIABLE}=1")
    url = databases.create_postgres_database(template=template_name)
    try:
        yield url
    finally:
        databases.drop_postgres_database(url)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[GraphQLClient]:
    """The real app, over HTTP, on a fresh database of each backend."""
    async with running_client(settings_for(database_url)) as graphql_client:
        yield graphql_client


@pytest.fixture(scope="session")
def node_client() -> NodeClientLauncher:
    """Starts the npm graphql-ws client; `npm ci` runs once, and only for a new lockfile."""
    return install_packages()


@pytest.fixture
async def behind_a_proxy(database_url: str) -> AsyncIterator[tuple[LiveServer, TcpProxy]]:
    """A live server reaching its database through a TCP proxy the test can cut."""
    async with (
        tcp_proxy(database_url) as proxy,
        live_server(settings_for(proxy.url_for(database_url))) as server,
    ):
        yield server, proxy
