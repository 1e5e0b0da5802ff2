"""Instructions per request under callgrind: a cost that other load cannot blur.

wrk's requests per second on a shared machine drift by up to 30% between runs.
callgrind counts the instructions the server process executes (every thread, not the
kernel), so the same code gives the same count whatever else runs. Each target is served
by hypercorn in one process (``--workers 0``) under valgrind; after a warm-up the counters
are zeroed, a fixed number of requests is sent (8 at a time, keep-alive), and the total
is divided by that number.

    .venv/bin/python -m bench.instructions            # bare Quart, then quart_app on SQLite
    .venv/bin/python -m bench.instructions --requests 400 --postgres

Needs valgrind (``apt-get install valgrind``). Slow: about 5 minutes per target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.run import (
    PYTHON,
    ROOT,
    app_env,
    bench_token_and_things,
    free_port,
    prepare_database,
    reset_postgres,
)

WARM_UP = 60


def start(app: str, env: dict[str, str], out: Path) -> tuple[subprocess.Popen[bytes], str]:
    """hypercorn serving *app* in one process under callgrind; its process and base URL."""
    port = free_port()
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        PYTHON, "-m", "hypercorn", "-c", str(ROOT / "hypercorn.toml"), "--workers", "0",
        "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null", app,
    ]  # fmt: skip
    with (out.parent / "valgrind.log").open("ab") as log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900  # imports under valgrind take minutes on a busy machine
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/healthz", timeout=30)
            return process, base
        except httpx.HTTPError:
            time.sleep(1)
    raise RuntimeError("the server did not start under valgrind")


async def send(base: str, path: str, headers: dict[str, str], count: int) -> None:
    """*count* GETs of *path*, 8 at a time on keep-alive connections; all must be 200."""
    left = count
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:

        async def one_client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                answer = await client.get(path)
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code} {answer.text}")

        await asyncio.gather(*(one_client() for _ in range(8)))


def per_request(
    process: subprocess.Popen[bytes],
    out: Path,
    base: str,
    path: str,
    headers: dict[str, str],
    n: int,
) -> float:
    """Instructions per request of *path*, counted over *n* requests after a warm-up."""
    asyncio.run(send(base, path, headers, WARM_UP))
    subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True)
    asyncio.run(send(base, path, headers, n))
    before = set(out.parent.glob(out.name + ".*"))
    subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while not (dumps := set(out.parent.glob(out.name + ".*")) - before):
        if time.monotonic() > deadline:
            raise RuntimeError("callgrind wrote no dump")
        time.sleep(0.5)
    time.sleep(1)  # the dump is written in one go; give it time to finish
    text = max(dumps, key=os.path.getmtime).read_text(errors="replace")
    total = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    if total is None:
        raise RuntimeError("no total in the callgrind dump")
    return int(total.group(1)) / n


def measure(app: str, env: dict[str, str], paths: dict[str, str], n: int, token: bool) -> None:
    """Print the instructions per request of each of *paths* (label to path) on *app*."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        process, base = start(app, env, out)
        try:
            bearer = {"Authorization": f"Bearer {bench_token_and_things(base)}"} if token else {}
            for label, path in paths.items():
                headers = bearer if path == "/api/things" else {}
                count = per_request(process, out, base, path, headers, n)
                print(f"{label:32s} {count / 1e6:6.3f} M instructions per request", flush=True)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="requests counted per path")
    parser.add_argument("--postgres", action="store_true", help="quart_app on PostgreSQL too")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    measure("bench.bare_quart:app", dict(os.environ), {"bare Quart /api/status": "/api/status"},
            args.requests, token=False)  # fmt: skip
    backends = {"SQLite": "sqlite"} | ({"PostgreSQL": "postgresql"} if args.postgres else {})
    for label, backend in backends.items():
        with tempfile.TemporaryDirectory() as scratch:
            url = (
                asyncio.run(reset_postgres())
                if backend == "postgresql"
                else f"sqlite+aiosqlite:///{Path(scratch) / 'bench.sqlite3'}"
            )
            env = app_env(url)
            prepare_database(env)
            paths = {f"quart_app {label} /api/status": "/api/status",
                     f"quart_app {label} /api/things": "/api/things"}  # fmt: skip
            measure("quart_app.asgi:app", env, paths, args.requests, token=True)


if __name__ == "__main__":
    main()
