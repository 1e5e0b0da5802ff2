"""CPU time and context switches per request of each server's workers, under wrk.

req/s on a shared 2-core machine moves with whatever else runs, wrk included. The CPU
time the server's worker processes spend per request (``perf stat -e task-clock``,
attached to the workers for the length of a wrk run) moves far less, and it counts
what callgrind's instruction counts (``bench/instructions.py``) leave out: cache
misses, the kernel's share, and the thread hand-offs a context-switch count shows.

    .venv/bin/python -m bench.cpu                     # bare Quart, quart_app on SQLite
    .venv/bin/python -m bench.cpu --postgres --rounds 5
    .venv/bin/python -m bench.cpu --compare ../other-checkout   # that code side by side

Needs ``perf`` (Debian: linux-perf). Each round loads every target in turn for
``--seconds`` at each of ``--connections`` (64 unless told).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path

import bench.run as harness
from bench.run import (
    app_env,
    bench_token_and_things,
    ensure_wrk,
    prepare_database,
    quart_app_server,
    raise_open_file_limit,
    reset_postgres,
    run_wrk,
    serve,
    wait_until_quiet,
)

Target = tuple[str, str, list[str]]


def worker_pids(base: str) -> list[str]:
    """The processes listening on *base*'s port (one socket per worker)."""
    port = base.rsplit(":", 1)[1]
    listing = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return sorted(set(re.findall(r"pid=(\d+)", listing)))


def measure(
    base: str, path: str, headers: list[str], seconds: int, connections: int = 64
) -> dict[str, float]:
    """req/s, and CPU milliseconds and context switches per request, over one wrk run."""
    wait_until_quiet()
    perf = subprocess.Popen(
        [
            "perf", "stat", "-x", ",", "-e", "task-clock,context-switches",
            "-p", ",".join(worker_pids(base)), "--", "sleep", str(seconds + 1),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    numbers = run_wrk(base + path, connections, seconds, headers, settle=False)
    _, report = perf.communicate()
    counts = {}
    for line in report.splitlines():
        value, _unit, event, *_ = line.split(",")
        if value.replace(".", "").isdigit():
            counts[event] = float(value)
    requests = numbers["requests_per_second"] * seconds
    return {
        "requests_per_second": numbers["requests_per_second"],
        "cpu_ms_per_request": counts["task-clock"] / requests,
        "context_switches_per_request": counts["context-switches"] / requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--postgres", action="store_true", help="the list on PostgreSQL too")
    parser.add_argument("--compare", type=Path, help="a checkout whose quart_app runs as well")
    parser.add_argument(
        "--connections",
        default="64",
        help="wrk's connections, comma-separated; each target runs at each in turn",
    )
    args = parser.parse_args()
    ensure_wrk()
    raise_open_file_limit()
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as servers:
        workdir = Path(scratch)
        databases = {"SQLite": f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}"}
        if args.postgres:
            databases["PostgreSQL"] = asyncio.run(reset_postgres())
        targets: dict[str, Target] = {}
        bare = servers.enter_context(
            serve(
                quart_app_server(None, "bench.bare_quart:app"),
                dict(os.environ),
                workdir,
                "/api/status",
            )
        )
        targets["bare Quart /api/status"] = (bare, "/api/status", [])
        for name, url in databases.items():
            env = app_env(url)
            prepare_database(env)
            checkouts = {"": harness.ROOT}
            if args.compare:
                checkouts[f" ({args.compare.name})"] = args.compare.resolve()
            token = ""
            for label, root in checkouts.items():
                # The server imports quart_app from its working directory.
                harness.ROOT = root
                try:
                    base = servers.enter_context(
                        serve(quart_app_server(), dict(env, PYTHONPATH=str(root)), workdir, "/")
                    )
                finally:
                    harness.ROOT = checkouts[""]
                token = token or bench_token_and_things(base)
                auth = [f"Authorization: Bearer {token}"]
                if name == "SQLite":
                    targets[f"quart_app{label} /api/status"] = (base, "/api/status", [])
                targets[f"quart_app{label} {name} list"] = (base, "/api/things", auth)
        for round_number in range(1, args.rounds + 1):
            for label, (base, path, headers) in targets.items():
                for connections in map(int, args.connections.split(",")):
                    result = measure(base, path, headers, args.seconds, connections)
                    print(
                        f"round {round_number} {label:38s} c={connections:<5}"
                        f" {result['requests_per_second']:7.0f} req/s"
                        f"  {result['cpu_ms_per_request']:6.3f} ms CPU"
                        f"  {result['context_switches_per_request']:5.2f} switches per request",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
