"""`gql-scheduler serve | migrate | export-schema | create-api-key | list-api-keys |
revoke-api-key | bench`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic.util.exc import CommandError
from sqlalchemy.exc import SQLAlchemyError

from gql_scheduler.domain.access import Role
from gql_scheduler.domain.errors import UserInputError
from gql_scheduler.settings import (
    AuthMode,
    Settings,
    SettingsError,
    is_loopback_host,
    load_settings,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        return int(arguments.run(arguments))
    except SettingsError as error:
        print(f"gql-scheduler: {error}", file=sys.stderr)
        return 2
    except UserInputError as error:
        print(f"gql-scheduler: {error.message}", file=sys.stderr)
        return 1
    except StartupError as error:
        print(f"gql-scheduler: {error}", file=sys.stderr)
        return 1
    except (OSError, SQLAlchemyError, CommandError) as error:
        # Expected operational failures (database down, unwritable file): one line.
        print(f"gql-scheduler: {_one_line(error)}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gql-scheduler", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API and the scheduler")
    serve.add_argument("--host", help="address to bind (default: GQL_SCHEDULER_HOST)")
    serve.add_argument("--port", type=int, help="port (default: GQL_SCHEDULER_PORT)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations on start")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(run=_migrate)

    bench = commands.add_parser("bench", help="measure the engine beside a baseline")
    kinds = bench.add_subparsers(dest="kind", required=True)
    fire = kinds.add_parser("fire", help="executions/s and drift through the whole path")
    fire.add_argument("--jobs", type=int, default=2000)
    fire.add_argument("--seconds", type=float, default=10.0)
    fire.add_argument("--every", type=float, default=1.0, help="each job's interval (s)")
    fire.add_argument(
        "--database-url",
        help="a PostgreSQL server to make a scratch database on (default: a temporary SQLite file)",
    )
    fire.set_defaults(run=_bench_fire)
    load = kinds.add_parser("load", help="time to load and arm many cron jobs")
    load.add_argument("--jobs", type=int, default=100_000)
    load.set_defaults(run=_bench_load)
    fanout = kinds.add_parser("fanout", help="subscription deliveries/s and latency, many clients")
    fanout.add_argument("--subscribers", type=int, default=500)
    fanout.add_argument("--rate", type=float, default=20.0, help="events published per second")
    fanout.add_argument("--seconds", type=float, default=10.0)
    fanout.set_defaults(run=_bench_fanout)
    burst = kinds.add_parser("burst", help="many jobs due in the same second")
    burst.add_argument("--jobs", type=int, default=10_000)
    burst.add_argument(
        "--database-url",
        help="a PostgreSQL server to make a scratch database on (default: a temporary SQLite file)",
    )
    burst.set_defaults(run=_bench_burst)
    cluster = kinds.add_parser("cluster", help="N serve processes sharing one PostgreSQL")
    cluster.add_argument("--instances", type=int, default=2)
    cluster.add_argument("--jobs", type=int, default=500, help="noop jobs, each every 1 s")
    cluster.add_argument("--seconds", type=float, default=15.0)
    cluster.add_argument(
        "--database-url", help="the PostgreSQL server to make scratch databases on"
    )
    cluster.set_defaults(run=_bench_cluster)
    mixed = kinds.add_parser("mixed", help="firing drift while API clients load the service")
    mixed.add_argument("--jobs", type=int, default=500, help="noop jobs, each every 1 s")
    mixed.add_argument("--clients", type=int, default=50)
    mixed.add_argument("--seconds", type=float, default=10.0)
    mixed.add_argument(
        "--backend", action="append", choices=["sqlite", "postgresql"], dest="backends"
    )
    mixed.set_defaults(run=_bench_mixed)

    _add_key_commands(commands)

    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")
    export.set_defaults(run=_export_schema)
    return parser


def _add_key_commands(commands: Any) -> None:
    create = commands.add_parser(
        "create-api-key", help="create an API key; its secret is printed once, last"
    )
    create.add_argument("--name", required=True, help="who or what uses it (recorded as actor)")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.set_defaults(run=_create_api_key)
    listing = commands.add_parser("list-api-keys", help="name, role, created, last used")
    listing.set_defaults(run=_list_api_keys)
    revoke = commands.add_parser("revoke-api-key", help="revoke a key (every instance, in s)")
    revoke.add_argument("--name", required=True)
    revoke.set_defaults(run=_revoke_api_key)


def _serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from gql_scheduler.app import create_app, uvicorn_options
    from gql_scheduler.http_server import CleanExitServer
    from gql_scheduler.logs import configure_logging
    from gql_scheduler.store import migrations

    overrides = {
        key: value
        for key, value in (("host", arguments.host), ("port", arguments.port))
        if value is not None
    }
    settings: Settings = load_settings(**overrides)
    _refuse_unprotected(settings)
    # Migrated here, before the server starts: a database it cannot use (a read-only file,
    # a server that refuses) is then one line and exit status 1, not a traceback from the
    # server's start-up.
    if arguments.no_migrate:
        _require_current_schema(settings.database_url)
    else:
        migrations.upgrade(settings.database_url)
    configure_logging(settings.log_level.value, settings.log_format.value)
    app = create_app(settings, apply_migrations=False, freeze_heap=True)
    where = "GraphiQL" if settings.graphiql_served else "GraphQL API"
    print(
        f"gql-scheduler: {where} at http://{settings.host}:{settings.port}/graphql "
        f"(database: {_display_url(settings.database_url)})",
        flush=True,
    )
    # asyncio's own loop: the engine hands work to SQLite's driver thread constantly, and
    # measured no faster on uvloop (see the README's figures, taken on this loop).
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        lifespan="on",
        loop="asyncio",
        **uvicorn_options(settings),
    )
    CleanExitServer(config).run()  # a SIGTERM stop exits 0 (http_server.py)
    return 0


def _migrate(arguments: argparse.Namespace) -> int:
    from gql_scheduler.store import migrations

    settings = load_settings()
    migrations.upgrade(settings.database_url, arguments.revision)
    print(
        f"gql-scheduler: database at revision {migrations.current_revision(settings.database_url)}"
    )
    return 0


def _bench_fire(arguments: argparse.Namespace) -> int:
    from gql_scheduler.bench import fire

    print(fire.run_fire(arguments.jobs, arguments.seconds, arguments.every, arguments.database_url))
    return 0


def _bench_load(arguments: argparse.Namespace) -> int:
    from gql_scheduler.bench import load

    print(load.run_load(arguments.jobs))
    return 0


def _bench_fanout(arguments: argparse.Namespace) -> int:
    from gql_scheduler.bench import fanout

    print(fanout.run_fanout(arguments.subscribers, arguments.rate, arguments.seconds))
    return 0


def _bench_burst(arguments: argparse.Namespace) -> int:
    from gql_scheduler.bench import burst

    print(burst.run_burst(arguments.jobs, arguments.database_url))
    return 0


def _bench_cluster(arguments: argparse.Namespace) -> int:
    from gql_scheduler.bench import cluster

    print(
        cluster.run_cluster(
            arguments.instances, arguments.jobs, arguments.seconds, arguments.database_url
        )
    )
    return 0


def _bench_mixed(arguments: argparse.Namespace) -> int:
    from gql_scheduler.bench import mixed

    backends = arguments.backends or ["sqlite", "postgresql"]
    print(mixed.run_mixed(arguments.jobs, arguments.clients, arguments.seconds, backends))
    return 0


def _export_schema(arguments: argparse.Namespace) -> int:
    from gql_scheduler.api.schema import export_sdl

    sdl = export_sdl()
    if arguments.output is None:
        sys.stdout.write(sdl)
    else:
        arguments.output.write_text(sdl, encoding="utf-8")
    return 0


class StartupError(Exception):
    """The service cannot start as asked."""


def _refuse_unprotected(settings: Settings) -> None:
    if settings.auth is AuthMode.DISABLED and not is_loopback_host(settings.host):
        raise StartupError(
            f"refusing to listen on {settings.host} with GQL_SCHEDULER_AUTH=disabled: anyone "
            "who can reach it could run jobs; use auth (GQL_SCHEDULER_AUTH=auto or required, "
            "keys from `gql-scheduler create-api-key`) or listen on 127.0.0.1"
        )


def _create_api_key(arguments: argparse.Namespace) -> int:
    from gql_scheduler.cli_keys import create_api_key

    key, secret = asyncio.run(create_api_key(load_settings(), arguments.name, Role(arguments.role)))
    print(f"created API key {key.name!r} with role {key.role}; its secret, shown only now:")
    print(secret)
    return 0


def _list_api_keys(arguments: argparse.Namespace) -> int:
    from gql_scheduler.cli_keys import list_api_keys

    print(asyncio.run(list_api_keys(load_settings())))
    return 0


def _revoke_api_key(arguments: argparse.Namespace) -> int:
    from gql_scheduler.cli_keys import revoke_api_key

    asyncio.run(revoke_api_key(load_settings(), arguments.name))
    print(f"revoked API key {arguments.name!r}: every instance refuses it within seconds")
    return 0


def _require_current_schema(database_url: str) -> None:
    from gql_scheduler.store import migrations

    current, head = migrations.current_revision(database_url), migrations.head_revision()
    if current != head:
        raise StartupError(
            f"the database schema is at revision {current or 'none'}, this version needs "
            f"{head}: run `gql-scheduler migrate` or start without --no-migrate"
        )


def _one_line(error: BaseException) -> str:
    text = " ".join(str(getattr(error, "orig", None) or error).split())
    return f"{type(error).__name__}: {text}"


def _display_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
