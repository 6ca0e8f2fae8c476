"""The composition root: builds everything from Settings and ties it to the ASGI lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.types import ExecutionResult

from gql_scheduler import __version__
from gql_scheduler.actions import guarded_transport
from gql_scheduler.actions.network_policy import NetworkPolicy
from gql_scheduler.actions.registry import HandlerRegistry
from gql_scheduler.actions.runners import ActionRunners
from gql_scheduler.api.access import Authenticator, unauthenticated_error
from gql_scheduler.api.context import Context, ServerInfo
from gql_scheduler.api.edge import ConcurrencyLimit, RequestSlots, edge_middleware
from gql_scheduler.api.fast_lane import FastLane
from gql_scheduler.api.http_errors import BodyLimit, GatedGraphQL
from gql_scheduler.api.limits import QueryGate, QueryLimits
from gql_scheduler.api.probes import PROBE_PATHS, probe_routes
from gql_scheduler.api.schema import build_schema
from gql_scheduler.api.shared_results import encode_message
from gql_scheduler.api.websockets import AuthenticatingWSHandler, pinging_handler
from gql_scheduler.api.ws_access import ConnectionAccess
from gql_scheduler.broker.base import Broker
from gql_scheduler.broker.memory import MemoryBroker
from gql_scheduler.broker.postgres import PostgresBroker
from gql_scheduler.domain import redaction
from gql_scheduler.domain.clock import Clock, SystemClock
from gql_scheduler.live.feed import EventFeed
from gql_scheduler.live.retention import EventPruner
from gql_scheduler.scheduling.dispatcher import Dispatcher, DispatchSettings
from gql_scheduler.scheduling.engine import Engine, EngineSettings
from gql_scheduler.services.api_keys import ApiKeyService
from gql_scheduler.services.executions import CANCELLED_BY_REQUEST, ExecutionService
from gql_scheduler.services.input_sizes import InputLimits
from gql_scheduler.services.jobs import JobService
from gql_scheduler.services.readiness import ReadinessService
from gql_scheduler.services.streams import StreamService
from gql_scheduler.services.validation import ServerPolicy
from gql_scheduler.settings import Settings, secret_values
from gql_scheduler.store import migrations
from gql_scheduler.store.database import Database
from gql_scheduler.tasks import BackgroundTasks
from gql_scheduler.web.graphiql import ASSETS_PATH, GraphiQLAssets, GraphiQLPage

log = logging.getLogger("gql_scheduler.app")

# How uvicorn serves the app. Subscription messages are small JSON documents sent to many
# subscribers: compressing each one per connection (permessage-deflate) cost more CPU than
# anything else in a fan-out to 500 subscribers, for little saved on the wire.
UVICORN_OPTIONS: dict[str, Any] = {"ws_per_message_deflate": False}


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """UVICORN_OPTIONS, and websocket messages no larger than a request body."""
    return {**UVICORN_OPTIONS, "ws_max_size": settings.max_request_bytes}


@dataclass
class Container:
    """Everything the running service is made of; tests reach in through `app.state`."""

    settings: Settings
    database: Database
    # The same database through the API's own bounded pool (Database.with_own_pool).
    api_database: Database
    http_client: httpx.AsyncClient
    runners: ActionRunners
    engine: Engine
    jobs: JobService
    executions: ExecutionService
    streams: StreamService
    api_keys: ApiKeyService
    readiness: ReadinessService
    server: ServerInfo
    broker: Broker
    feed: EventFeed
    pruner: EventPruner
    _background: BackgroundTasks = field(default_factory=BackgroundTasks)

    async def start(self, *, freeze_heap: bool = False) -> None:
        """The feed first, so that no event committed once the engine runs is missed.

        `freeze_heap` (a serving process, not a test's) then takes everything loaded so far
        out of the cyclic garbage collector's full passes: with 100,000 jobs armed, one such
        pass held the event loop for over 300 ms, and they recur as the process allocates.
        """
        if self.database.checkpointer is not None:
            self._background.start(self.database.checkpointer.run(), name="wal-checkpoints")
        await self.api_keys.refresh()  # the keys work from the first request
        self._background.start(self.api_keys.run(), name="api-keys")
        await self.feed.start()
        await self.broker.start(self.feed.on_signals)
        if self.broker.spans_processes:
            # Job changes made on other instances re-arm this instance's timers, and
            # cancellations asked for there stop this instance's runs at once.
            self.feed.add_job_listener(lambda event: self.engine.job_changed(event.job_id))
            self.feed.add_cancel_listener(self._cancel_here)
        await self.engine.start()
        self._background.start(self.pruner.run(), name="event-pruner")
        if freeze_heap:
            gc.collect()  # what is garbage now is not frozen with the rest
            gc.freeze()

    def _cancel_here(self, execution_id: str) -> None:
        dispatcher = self.engine.dispatcher
        dispatcher.spawn(dispatcher.cancel_local([execution_id], CANCELLED_BY_REQUEST))

    async def aclose(self) -> None:
        await self.engine.stop()
        await self.broker.stop()
        await self.feed.stop()
        await self.runners.aclose()
        await self.http_client.aclose()
        # The pruner and the checkpointer last: the stops above still write.
        await self._background.stop()
        if self.api_database is not self.database:
            await self.api_database.dispose()
        await self.database.dispose()


def _runners_for(
    settings: Settings, handlers: HandlerRegistry, http_client: httpx.AsyncClient
) -> ActionRunners:
    return ActionRunners.create(
        handlers=handlers,
        http_client=http_client,
        smtp_url=settings.smtp_url,
        shell_enabled=settings.enable_shell,
        http_max_body_bytes=settings.output_limit_bytes,
    )


def _dispatcher_for(
    settings: Settings, database: Database, runners: ActionRunners, clock: Clock
) -> Dispatcher:
    return Dispatcher(
        database,
        runners,
        clock,
        DispatchSettings(
            instance=settings.instance_name,
            lease_seconds=settings.lease_seconds,
            max_concurrent=settings.max_concurrent_executions,
            stop_grace_seconds=settings.shutdown_grace_seconds,
            output_limit_bytes=settings.output_limit_bytes,
        ),
    )


def build_container(settings: Settings, *, clock: Clock | None = None) -> Container:
    clock = clock or SystemClock()
    redaction.known_secrets.register(secret_values(settings))
    database = Database(settings.database_url)
    api_database = database.with_own_pool(
        size=settings.api_pool_size, timeout=settings.api_pool_timeout_seconds
    )
    handlers = HandlerRegistry.load()
    network = NetworkPolicy(
        denied=settings.http_deny_networks, allowed=settings.http_allow_networks
    )
    http_client = guarded_transport.build_http_client(network)
    runners = _runners_for(settings, handlers, http_client)
    dispatcher = _dispatcher_for(settings, database, runners, clock)
    engine = Engine(
        database,
        dispatcher,
        clock,
        EngineSettings(
            default_misfire_policy=settings.misfire_policy,
            lease_seconds=settings.lease_seconds,
            reconcile_seconds=settings.reconcile_seconds,
            misfire_grace_seconds=settings.misfire_grace_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
        ),
    )
    policy = ServerPolicy(
        shell_enabled=settings.enable_shell,
        email_enabled=settings.smtp_url is not None,
        handlers=handlers,
        network=network,
        inputs=InputLimits(
            payload_bytes=settings.max_payload_bytes, field_length=settings.max_field_length
        ),
    )
    jobs = JobService(
        api_database,
        clock,
        policy,
        default_misfire_policy=settings.misfire_policy,
        on_change=engine.job_changed,
    )
    server = ServerInfo(
        version=__version__,
        instance=settings.instance_name,
        scheduler_running=lambda: engine.running,
    )
    broker = _broker_for(database)
    feed = EventFeed(database, poll_seconds=settings.event_poll_seconds)
    return Container(
        settings=settings,
        database=database,
        api_database=api_database,
        http_client=http_client,
        runners=runners,
        engine=engine,
        jobs=jobs,
        executions=ExecutionService(api_database, clock, dispatcher),
        streams=StreamService(api_database, feed, max_queued=settings.subscriber_queue_size),
        readiness=ReadinessService(
            api_database,
            {"scheduler": lambda: engine.running, "broker": lambda: broker.listening},
            engine_outage=database.outage,
        ),
        api_keys=ApiKeyService(api_database, clock, refresh_seconds=settings.auth_refresh_seconds),
        server=server,
        broker=broker,
        feed=feed,
        pruner=EventPruner(database, clock, retention_seconds=settings.event_retention_seconds),
    )


def _broker_for(database: Database) -> Broker:
    """PostgreSQL LISTEN/NOTIFY when the store is PostgreSQL, else in-process."""
    if database.is_sqlite:
        broker = MemoryBroker()
        database.add_commit_listener(broker.publish)
        return broker
    dsn = database.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresBroker(dsn)


class GraphQLApp(GatedGraphQL):
    def __init__(self, container: Container) -> None:
        settings = container.settings
        keep_alive = settings.ws_keepalive_seconds
        # Our own page (web/graphiql.py), not Strawberry's, which loads GraphiQL from a CDN.
        self.graphiql = GraphiQLPage() if settings.graphiql_served else None
        super().__init__(
            build_schema(introspection=settings.introspection),
            graphql_ide="graphiql" if self.graphiql else None,
            keep_alive=keep_alive > 0,
            keep_alive_interval=keep_alive,
            connection_init_wait_timeout=timedelta(
                seconds=settings.ws_connection_init_timeout_seconds
            ),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            # Pages on these origins may open websockets, as CORS lets them call over HTTP.
            allowed_origins=container.settings.cors_origin_list,
        )
        self.graphql_transport_ws_handler_class = pinging_handler(keep_alive)
        self.graphql_ws_handler_class = AuthenticatingWSHandler
        self.connection_init_seconds = settings.ws_connection_init_timeout_seconds
        self.gate = QueryGate(self.schema._schema, _query_limits(settings))  # type: ignore[attr-defined]
        self.fast_lane = FastLane(self.schema)
        self.container = container
        self.authenticator = Authenticator(
            container.api_keys, required=container.settings.auth_required
        )
        self.access = ConnectionAccess(self.authenticator, self.schema._schema)  # type: ignore[attr-defined]
        container.api_keys.add_revoked_listener(self.access.close_revoked)

    async def render_graphql_ide(self, request: Request) -> Response:
        # Strawberry calls this only when graphql_ide is set, that is with a page.
        assert self.graphiql is not None
        return self.graphiql.response()

    def encode_json(self, data: object) -> str | bytes:
        # A shared subscription result is encoded once, not once per subscriber.
        return encode_message(data) or super().encode_json(data)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None
    ) -> Context:
        return Context(
            request=request,
            response=response,
            jobs=self.container.jobs,
            executions=self.container.executions,
            streams=self.container.streams,
            server=self.container.server,
            principal=self.authenticator.principal_for(request.headers.get("authorization")),
        )

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        """Nothing of an unauthenticated request is parsed or run (websockets are admitted
        at their connection_init instead, api/ws_access.py)."""
        context: Context = kwargs["context"]
        if context.principal is None:
            sub_response: Response = kwargs["sub_response"]
            sub_response.status_code = 401
            sub_response.headers["WWW-Authenticate"] = "Bearer"
            return ExecutionResult(data=None, errors=[unauthenticated_error()])
        return await super().execute_operation(*args, **kwargs)


def _query_limits(settings: Settings) -> QueryLimits:
    return QueryLimits(
        max_bytes=settings.max_query_bytes,
        max_tokens=settings.max_query_tokens,
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_query_aliases,
        max_cost=settings.max_query_cost,
    )


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    apply_migrations: bool = True,
    freeze_heap: bool = False,
) -> Starlette:
    container = build_container(settings, clock=clock)
    graphql = GraphQLApp(container)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if apply_migrations:
            await migrations.upgrade_async(container.database.engine)
        await container.start(freeze_heap=freeze_heap)
        log.info(
            "gql-scheduler started",
            extra={"action": "started", "instance": settings.instance_name},
        )
        try:
            yield
        finally:
            await graphql.access.stop()
            await container.aclose()
            log.info("gql-scheduler stopped", extra={"action": "stopped"})

    graphiql_assets: list[BaseRoute] = []
    if graphql.graphiql is not None:
        graphiql_assets.append(Mount(ASSETS_PATH, app=GraphiQLAssets()))
    request_slots = RequestSlots(settings.api_max_concurrent_requests)
    app = Starlette(
        routes=[
            *graphiql_assets,
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *probe_routes(
                jobs=container.jobs,
                readiness=container.readiness,
                version=__version__,
                instance=settings.instance_name,
            ),
        ],
        middleware=[
            *edge_middleware(
                allowed_hosts=settings.allowed_host_list,
                cors_origins=settings.cors_origin_list,
                exempt=PROBE_PATHS,
            ),
            Middleware(
                ConcurrencyLimit,
                slots=request_slots,
                wait_seconds=settings.api_queue_seconds,
                path="/graphql",
            ),
            Middleware(BodyLimit, max_bytes=settings.max_request_bytes),
        ],
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.request_slots = request_slots
    return app
