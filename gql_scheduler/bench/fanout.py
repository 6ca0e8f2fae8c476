"""`gql-scheduler bench fanout`: one subscription document, many subscribers, beside a
plain websocket fan-out.

Not a test: numbers depend on the machine. The service runs from a fresh SQLite database in
a temporary folder; events are real commits to the outbox. The baseline is a bare Starlette
websocket endpoint sending the same message shape from in-memory queues. The subscribers
run in a child process (gql_scheduler/bench/subscribers.py), as real clients never share
the server's event loop; both runs are measured alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from gql_scheduler.app import UVICORN_OPTIONS, Container, create_app
from gql_scheduler.bench.common import bench_settings, peak_rss_mb, percentile
from gql_scheduler.bench.serving import LOCALHOST, serving
from gql_scheduler.bench.subscribers import KEY_VARIABLE, OPERATION_ID
from gql_scheduler.domain.access import Role
from gql_scheduler.domain.clock import SystemClock
from gql_scheduler.domain.events import ExecutionEventType
from gql_scheduler.domain.executions import ExecutionStatus, ExecutionTrigger
from gql_scheduler.store.events import EventLog, EventQuery, EventRepository
from gql_scheduler.store.tables import executions

_CLOCK = SystemClock()
EVENT_TYPE = ExecutionEventType.SUCCEEDED
# Bounded waits: connecting everyone, events still in flight after the last publish, stops.
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
SHARED_CPU_NOTE = (
    "note: the subscribers run in a second process (one core each for the server and the"
    " clients on a 2-core machine), for both runs alike"
)


@dataclass(frozen=True, slots=True)
class FanoutReport:
    """`window`: from the first publish to the last receipt, at least the asked seconds, so
    that a server that falls behind shows fewer deliveries/s, not the same ones later."""

    name: str
    window: float
    published: int
    publish_seconds: float
    received: int
    missed: int
    duplicated: int
    latencies_ms: list[float]
    peak_rss_mb: float
    # The server process's CPU time (user + system) while publishing and delivering.
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.received / self.window

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)

    @property
    def cpu_per_delivery_us(self) -> float:
        return self.cpu_seconds / self.received * 1e6 if self.received else float("nan")

    def line(self) -> str:
        worst = max(self.latencies_ms, default=float("nan"))
        return (
            f"{self.name:<24} {self.per_second:>6.0f} deliveries/s"
            f" ({self.published / self.publish_seconds:4.1f} events/s published)"
            f"  latency p50 {self.percentile(0.5):6.1f} ms  p99 {self.percentile(0.99):6.1f} ms"
            f"  max {worst:6.1f} ms  missed {self.missed}  duplicated {self.duplicated}"
            f"  server CPU {self.cpu_per_delivery_us:5.1f} µs/delivery"
            f"  peak RSS {self.peak_rss_mb:4.0f} MB"
        )


# ---------------------------------------------------------------- subscribers


@dataclass(frozen=True, slots=True)
class Receipts:
    """What the subscriber process saw: per client, event id -> time.monotonic()."""

    seen: list[dict[int, float]]
    duplicated: int


@asynccontextmanager
async def _subscribers(
    url: str, count: int, events: int, folder: Path, *, graphql: bool, key: str | None = None
) -> AsyncIterator[Callable[[], Awaitable[Receipts]]]:
    """Start the subscriber process; once all are connected, yield how to collect them."""
    output = folder / f"receipts-{uuid.uuid4().hex}.json"
    arguments = [url, str(count), str(events), str(output), "--deadline", str(READY_TIMEOUT)]
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gql_scheduler.bench.subscribers",
        *arguments,
        *(["--graphql"] if graphql else []),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, KEY_VARIABLE: key} if key else None,
    )
    try:
        assert child.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT):
            line = await child.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the subscribers did not start: {line!r}")

        async def collect() -> Receipts:
            async with asyncio.timeout(READY_TIMEOUT + STOP_TIMEOUT):
                await child.wait()
            return _receipts(json.loads(output.read_text(encoding="utf-8")), count)

        yield collect
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


def _receipts(found: dict[str, Any], count: int) -> Receipts:
    seen: list[dict[int, float]] = [{} for _ in range(count)]
    for client, event_id, at in found["receipts"]:
        seen[client][event_id] = at
    return Receipts(seen, found["duplicated"])


# ---------------------------------------------------------------- servers


async def _poll(ready: Callable[[], bool], within: float) -> bool:
    """Whether `ready()` came true within `within` seconds (checked every 20 ms)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while True:
                if ready():
                    return True
                await asyncio.sleep(0.02)
    return ready()


async def _wait_until(ready: Callable[[], bool], what: str) -> None:
    if not await _poll(ready, READY_TIMEOUT):
        raise RuntimeError(f"timed out waiting for {what}")


class PlainHub:
    """The baseline: a bare websocket endpoint, one in-memory queue per connection."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[str]] = set()

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.queues.add(queue)
        sender = asyncio.create_task(self._send(websocket, queue))
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            self.queues.discard(queue)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    @staticmethod
    async def _send(websocket: WebSocket, queue: asyncio.Queue[str]) -> None:
        while True:
            await websocket.send_text(await queue.get())

    def publish(self, text: str) -> None:
        for queue in self.queues:
            queue.put_nowait(text)


# ---------------------------------------------------------------- publishing and measuring


@dataclass(frozen=True, slots=True)
class Published:
    started: float
    cpu_started: float
    times: dict[int, float]  # event id -> when it was out (committed, or queued)


async def _publish(
    rate: float, seconds: float, publish_one: Callable[[int], Awaitable[int]]
) -> Published:
    """Every 1/rate s for `seconds` (or later, when the loop is busy): publish one event."""
    published: dict[int, float] = {}
    cpu_started = _cpu_seconds()
    start = time.monotonic()  # the subscriber process stamps receipts on the same clock
    for index in range(max(1, round(rate * seconds))):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        event_id = await publish_one(index)
        published[event_id] = time.monotonic()  # nothing is sent before this task yields
    return Published(start, cpu_started, published)


async def _measure(
    name: str,
    collect: Callable[[], Awaitable[Receipts]],
    published: Published,
    seconds: float,
) -> FanoutReport:
    receipts = await collect()
    times = published.times
    latencies = [
        (received - times[event_id]) * 1000
        for seen in receipts.seen
        for event_id, received in seen.items()
        if event_id in times
    ]
    last_receipt = max((max(seen.values(), default=0.0) for seen in receipts.seen), default=0.0)
    expected = len(times) * len(receipts.seen)
    return FanoutReport(
        name=name,
        window=max(seconds, last_receipt - published.started),
        published=len(times),
        publish_seconds=max(max(times.values()) - published.started, seconds),
        received=len(latencies),
        missed=expected - len(latencies),
        duplicated=receipts.duplicated,
        latencies_ms=latencies,
        peak_rss_mb=peak_rss_mb(),
        cpu_seconds=_cpu_seconds() - published.cpu_started,
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _message(event_id: int, execution_id: str, job_id: str) -> str:
    """What a subscriber to SUBSCRIPTION receives for one event (graphql-transport-ws)."""
    node = {
        "id": str(event_id),
        "type": EVENT_TYPE.value,
        "at": _CLOCK.now().isoformat(),
        "execution": {"id": execution_id, "status": "SUCCEEDED", "jobId": job_id},
    }
    payload = {"data": {"executionEvents": node}}
    return json.dumps({"id": OPERATION_ID, "type": "next", "payload": payload})


async def baseline_fanout(subscribers: int, rate: float, seconds: float) -> FanoutReport:
    hub = PlainHub()
    app = Starlette(routes=[WebSocketRoute("/ws", hub.endpoint)])
    job_id = str(uuid.uuid4())
    events = max(1, round(rate * seconds))

    async def publish_one(index: int) -> int:
        hub.publish(_message(index + 1, "1", job_id))
        return index + 1

    with tempfile.TemporaryDirectory() as folder:
        async with (
            serving(app, lifespan="on", **UVICORN_OPTIONS) as port,
            _subscribers(
                f"ws://{LOCALHOST}:{port}/ws", subscribers, events, Path(folder), graphql=False
            ) as collect,
        ):
            await _wait_until(lambda: len(hub.queues) >= subscribers, "clients")
            published = await _publish(rate, seconds, publish_one)
            return await _measure("plain websocket fan-out", collect, published, seconds)


# ---------------------------------------------------------------- the service


async def graphql_fanout(
    subscribers: int, rate: float, seconds: float, *, auth: bool = False
) -> FanoutReport:
    """With `auth`, keys are required and every subscriber presents a viewer's."""
    events = max(1, round(rate * seconds))
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(bench_settings(Path(folder), auth="required" if auth else "disabled"))
        container: Container = app.state.container
        async with serving(app, lifespan="on", **UVICORN_OPTIONS) as port:
            job_id, execution_id = await _insert_execution(container)
            key = await _viewer_key(container) if auth else None
            url = f"ws://{LOCALHOST}:{port}/graphql"
            async with _subscribers(
                url, subscribers, events, Path(folder), graphql=True, key=key
            ) as collect:

                def subscribed() -> bool:
                    return container.feed.subscriber_count >= subscribers

                await _wait_until(subscribed, "subscriptions")
                first_id = await _last_event_id(container) + 1
                writer = _event_writer(container, first_id, job_id, execution_id)
                published = await _publish(rate, seconds, writer)
                name = "gql-scheduler, keys" if auth else "gql-scheduler, auth off"
                report = await _measure(name, collect, published, seconds)
            await _check_only_ours(container, first_id, len(published.times), execution_id)
    return report


async def _viewer_key(container: Container) -> str:
    _, secret = await container.api_keys.create("bench-viewer", Role.VIEWER)
    await container.api_keys.refresh()
    return secret


async def _insert_execution(container: Container) -> tuple[str, str]:
    """A finished execution that the events are about (so `execution` resolves)."""
    job_id, now = str(uuid.uuid4()), _CLOCK.now()
    status, trigger = ExecutionStatus.SUCCEEDED.value, ExecutionTrigger.MANUAL.value
    times = {"scheduled_for": now, "queued_at": now, "finished_at": now}
    insert = executions.insert().values(
        job_id=job_id, status=status, trigger=trigger, attempt=1, **times
    )
    async with container.database.write() as connection:
        inserted = await connection.execute(insert.returning(executions.c.id))
        return job_id, str(inserted.scalar_one())


def _event_writer(
    container: Container, first_id: int, job_id: str, execution_id: str
) -> Callable[[int], Awaitable[int]]:
    """One event per write transaction, committed to the outbox as the engine does."""

    async def write(index: int) -> int:
        async with container.database.write() as connection:
            EventRepository(connection).append_execution_events(
                [(EVENT_TYPE, job_id, execution_id)], at=_CLOCK.now()
            )
        return first_id + index  # SQLite's single writer: ids follow these commits

    return write


async def _last_event_id(container: Container) -> int:
    async with container.database.read() as connection:
        return await EventLog(connection).last_id()


async def _check_only_ours(container: Container, first_id: int, count: int, execution: str) -> None:
    """The ids the clients were matched on were the bench's own events, and only those."""
    async with container.database.read() as connection:
        found = await EventLog(connection).read(
            after=first_id - 1, limit=count + 1, query=EventQuery()
        )
    ids = [int(event.id) for event in found]
    about = {getattr(event, "execution_id", None) for event in found}
    if ids != list(range(first_id, first_id + count)) or about != {execution}:
        raise RuntimeError("events other than the bench's were written during the run")


def run_fanout(subscribers: int, rate: float, seconds: float) -> str:
    # The baseline first: peak RSS only grows, so each figure is then its own peak.
    ceiling = asyncio.run(baseline_fanout(subscribers, rate, seconds))
    open_ = asyncio.run(graphql_fanout(subscribers, rate, seconds))
    ours = asyncio.run(graphql_fanout(subscribers, rate, seconds, auth=True))
    throughput = ours.per_second / ceiling.per_second if ceiling.per_second else float("nan")
    p99, ceiling_p99 = ours.percentile(0.99), ceiling.percentile(0.99)
    auth_cost = ours.cpu_per_delivery_us / open_.cpu_per_delivery_us
    return "\n".join(
        [
            f"bench fanout: {subscribers} subscribers to one executionEvents document,"
            f" {rate:g} events/s for {seconds:g} s (graphql-transport-ws, SQLite)",
            ours.line(),
            open_.line(),
            ceiling.line(),
            f"API keys: {ours.cpu_per_delivery_us:.1f} vs {open_.cpu_per_delivery_us:.1f} µs of"
            f" server CPU per delivery with auth off ({auth_cost:.2f}x)",
            f"ratio (gql-scheduler / plain websocket fan-out): {throughput:.2f} of the"
            f" deliveries/s, p99 latency {p99:.1f} vs {ceiling_p99:.1f} ms"
            f" ({p99 / ceiling_p99 if ceiling_p99 else float('nan'):.2f}x)",
            SHARED_CPU_NOTE,
        ]
    )
