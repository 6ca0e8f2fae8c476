"""The API clients of `bench mixed`, in a process of their own (load must not share the
server's event loop, as no real client does).

`python -m gql_scheduler.bench.api_clients URL CLIENTS SECONDS OUTPUT` runs CLIENTS clients,
each sending one request after another for SECONDS: half mutations (createJob of a paused
job, updateJob, triggerJob of a job that runs nothing) and half queries (job(id), a page of
jobs). It prints "ready" once the clients have made their own jobs, and writes each
request's (kind, seconds, ok) to OUTPUT as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

CREATE = (
    "mutation($input: CreateJobInput!) { createJob(input: $input) { job { id } errors { code } } }"
)
UPDATE = (
    "mutation($id: ID!, $d: String) { updateJob(id: $id, input: {description: $d}) "
    "{ job { id } errors { code } } }"
)
TRIGGER = (
    "mutation($id: ID!) { triggerJob(id: $id, force: true) { execution { id } errors { code } } }"
)
JOB = "query($id: ID!) { job(id: $id) { id name state nextRunAt lastExecution { status } } }"
PAGE = "{ jobs(first: 20) { totalCount edges { node { id name state } } } }"
MUTATIONS = ("create", "update", "trigger")
QUERIES = ("job", "page")


def job_input(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "paused": True,
        "schedules": [{"cron": {"expression": "0 9 * * 1"}}],
        "action": {"handler": {"name": "noop"}},
    }


class ApiClient:
    def __init__(self, http: httpx.AsyncClient, number: int) -> None:
        self.http = http
        self.number = number
        self.job_id = ""
        self.made = itertools.count()
        self.samples: list[tuple[str, float, bool]] = []

    async def post(self, query: str, variables: dict[str, Any]) -> tuple[bool, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        if response.status_code != 200:
            return False, None
        body = response.json()
        return "errors" not in body, body.get("data")

    async def prepare(self) -> None:
        ok, data = await self.post(CREATE, {"input": job_input(f"client-{self.number}")})
        if not ok:
            raise RuntimeError(f"client {self.number} could not create its job: {data}")
        self.job_id = data["createJob"]["job"]["id"]

    async def request(self, kind: str) -> bool:
        if kind == "create":
            made = f"client-{self.number}-{next(self.made)}"
            ok, _ = await self.post(CREATE, {"input": job_input(made)})
        elif kind == "update":
            ok, _ = await self.post(UPDATE, {"id": self.job_id, "d": str(next(self.made))})
        elif kind == "trigger":
            ok, _ = await self.post(TRIGGER, {"id": self.job_id})
        elif kind == "job":
            ok, _ = await self.post(JOB, {"id": self.job_id})
        else:
            ok, _ = await self.post(PAGE, {})
        return ok

    async def run(self, until: float) -> None:
        kinds = itertools.cycle(
            [kind for pair in zip(MUTATIONS * 2, QUERIES * 3, strict=True) for kind in pair]
        )
        while time.monotonic() < until:
            kind = next(kinds)
            started = time.monotonic()
            try:
                ok = await self.request(kind)
            except httpx.HTTPError:
                ok = False
            self.samples.append((kind, time.monotonic() - started, ok))


async def run_clients(url: str, count: int, seconds: float, output: Path) -> None:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, trust_env=False) as http:
        clients = [ApiClient(http, number) for number in range(count)]
        await asyncio.gather(*(client.prepare() for client in clients))
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the parent says when to start
        until = time.monotonic() + seconds
        await asyncio.gather(*(client.run(until) for client in clients))
    samples = [sample for client in clients for sample in client.samples]
    await asyncio.to_thread(output.write_text, json.dumps({"samples": samples}), "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gql_scheduler.bench.api_clients")
    parser.add_argument("url")
    parser.add_argument("clients", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("output", type=Path)
    arguments = parser.parse_args(argv)
    asyncio.run(run_clients(arguments.url, arguments.clients, arguments.seconds, arguments.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
