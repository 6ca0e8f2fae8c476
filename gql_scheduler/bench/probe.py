"""The API probe of `bench burst`, in a process of its own (it must not share the server's
event loop): `python -m gql_scheduler.bench.probe URL SECONDS OUTPUT` sends `{ __typename }`
one after another (every PROBE_EVERY seconds at most) for SECONDS at most, or until a file
named OUTPUT.stop appears, and writes, for each, when
it was sent (Unix time) and its latency in seconds (null for a failure) to OUTPUT as JSON.
It prints "ready" first and starts on a line on its standard input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

PROBE_EVERY = 0.02
QUERY = {"query": "{ __typename }"}


async def probe(url: str, seconds: float, stop: Path) -> list[tuple[float, float | None]]:
    latencies: list[tuple[float, float | None]] = []
    async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as http:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not await asyncio.to_thread(stop.exists):
            sent, sent_at = time.monotonic(), time.time()
            try:
                response = await http.post("/graphql", json=QUERY)
                ok = response.status_code == 200 and "errors" not in response.json()
            except httpx.HTTPError:
                ok = False
            took = time.monotonic() - sent
            latencies.append((sent_at, took if ok else None))
            await asyncio.sleep(max(0.0, PROBE_EVERY - took))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("seconds", type=float)
    parser.add_argument("output", type=Path)
    arguments = parser.parse_args()
    stop = arguments.output.with_name(arguments.output.name + ".stop")
    found = asyncio.run(probe(arguments.url, arguments.seconds, stop))
    arguments.output.write_text(json.dumps(found), encoding="utf-8")


if __name__ == "__main__":
    main()
