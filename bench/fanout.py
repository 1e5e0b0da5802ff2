"""How the workers of one SQLite instance learn of each other's changes: poll or Redis.

``make run`` serves SQLite with 2 workers. Each worker's live-updates hub must hear of
the changes the other worker commits (quart_app/data/fanout.py): by reading the event
log every EVENT_POLL_INTERVAL seconds, or by Redis pub/sub. This measures, for each, on
the same machine in one run: the delivery latency (from just before the write is sent
to each subscriber's receipt of its event) and the CPU the 2 workers spend while idle
with the subscribers open.

    .venv/bin/python -m bench.fanout [--rounds 3] [--redis redis://127.0.0.1:6379/9]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.run import BENCH_PASSWORD, BENCH_USER, app_env, prepare_database, quart_app_server, serve

SUBSCRIBERS = 20
WRITES = 100
WRITES_PER_SECOND = 10
IDLE_SECONDS = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def workers_of(port: int) -> list[int]:
    """The pids of the worker processes of the server bound to *port*."""
    supervisor = None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"quart_app.serve" in cmdline and f"127.0.0.1:{port}".encode() in cmdline:
                supervisor = int(entry.name)
    assert supervisor is not None
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == supervisor:
                children.append(int(entry.name))
    return children


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


async def measure(base: str) -> dict[str, float]:
    """Delivery latencies over WRITES writes, then idle CPU with the streams open."""
    async with httpx.AsyncClient(base_url=base) as client:
        issued = await client.post(
            "/api/tokens", json={"username": BENCH_USER, "password": BENCH_PASSWORD}
        )
        headers = {"Authorization": f"Bearer {issued.json()['token']}"}
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    received = 0
    ready = 0
    all_ready = asyncio.Event()
    all_delivered = asyncio.Event()

    async def subscriber() -> None:
        nonlocal received, ready
        async with (
            httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10.0, read=60.0)) as own,
            own.stream("GET", "/api/things/events", headers=headers) as response,
        ):
            ready += 1
            if ready == SUBSCRIBERS:
                all_ready.set()
            async for line in response.aiter_lines():
                if line.startswith("data: {") and '"title"' in line:
                    number = int(json.loads(line[6:])["title"])
                    latencies.append(time.perf_counter() - sent_at[number])
                    received += 1
                    if received == WRITES * SUBSCRIBERS:
                        all_delivered.set()

    tasks = [asyncio.create_task(subscriber()) for _ in range(SUBSCRIBERS)]
    await asyncio.wait_for(all_ready.wait(), 30)
    async with httpx.AsyncClient(base_url=base) as writer:
        for number in range(WRITES):
            sent_at[number] = time.perf_counter()
            answer = await writer.post("/api/things", json={"title": str(number)}, headers=headers)
            assert answer.status_code == 201
            await asyncio.sleep(1 / WRITES_PER_SECOND)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_delivered.wait(), 10)
    port = int(base.rsplit(":", 1)[1])
    workers = workers_of(port)
    before = cpu_seconds(workers)
    await asyncio.sleep(IDLE_SECONDS)
    idle_cpu = (cpu_seconds(workers) - before) / IDLE_SECONDS
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    return {
        "delivered": received / (WRITES * SUBSCRIBERS),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "idle_cpu_percent": 100 * idle_cpu,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Measure both engines in turn, *rounds* times; print the medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    arguments = parser.parse_args(argv)
    engines = {
        "poll (0.25 s)": {"QUART_EVENT_FANOUT": "poll"},
        "redis": {"QUART_EVENT_FANOUT": "redis", "QUART_EVENT_REDIS_URL": arguments.redis},
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
    for _ in range(arguments.rounds):
        for name, settings in engines.items():
            with tempfile.TemporaryDirectory() as directory:
                workdir = Path(directory)
                env = {
                    **app_env(f"sqlite+aiosqlite:///{workdir / 'fanout.sqlite3'}"),
                    **settings,
                    "QUART_EVENT_STREAMS_PER_USER": str(SUBSCRIBERS),
                }
                prepare_database(env)
                with serve(quart_app_server(), env, workdir, "/healthz") as base:
                    results[name].append(asyncio.run(measure(base)))
    summary = {
        name: {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}
        for name, runs in results.items()
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
