"""``make bench``: load real servers with wrk, side by side with their references.

Every target runs under hypercorn with the project's hypercorn.toml (port overridden),
or under gunicorn for the Flask original and for the list written the Flask way
(bench/flask_things.py), on 127.0.0.1 only; wrk runs on the same machine. Results
print as they come and go to docs/benchmarks.md with a plot of throughput against
connections. Load is bounded: each wrk run lasts BENCH_SECONDS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.flask_things import sync_database_url
from quart_app.data.base import Base
from quart_app.data.database import build_engine

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PYTHON = sys.executable
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_DATABASE = "quart_app_bench"
BENCH_USER, BENCH_PASSWORD = "bench", "bench-password"
THINGS_PER_USER = 50
PAGE = 20
SWEEP = (64, 256, 1024)
# Rounds of scenario C's sweep.
C_ROUNDS = 3
# A server's base URL, the path loaded and the request headers.
Endpoint = tuple[str, str, Sequence[str]]
SEED_FLASK_APP = "tests.parity.seed_flask_app:create_seed_app()"
# Scenario F's Flask lists by name (see bench/flask_things.py): as first written, with
# Core expressions built per request, and tuned, with text() statements built once.
FLASK_LISTS = {
    "Flask list": "bench.flask_things:create_app()",
    "Flask list tuned": "bench.flask_things:create_tuned_app()",
}
FLASK_WORKER_CLASSES = ("sync", "gthread")


@dataclass
class Result:
    """One wrk run."""

    scenario: str
    target: str
    path: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int
    timeouts: int
    non_2xx: int
    # The slowest answered request (wrk leaves timed-out ones out; see timeouts).
    max_ms: float = float("nan")
    extra: dict[str, float] = field(default_factory=dict)
    # Scenario F: each repeated wrk run's own numbers; the fields above summarise them.
    runs: list[dict[str, float]] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.scenario:<3} {self.target:<34} {self.path:<15} c={self.connections:<5} "
            f"{self.requests_per_second:>9.0f} req/s  p50 {self.p50_ms:>7.2f} ms  "
            f"p99 {self.p99_ms:>8.2f} ms  errors {self.socket_errors}+{self.timeouts}t "
            f"non-2xx {self.non_2xx}"
        )


# --- wrk ---------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency_ms(output: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    return float(match.group(1)) * _UNIT_MS[match.group(2)] if match else float("nan")


# The whole machine's CPU share in use below which the next run may start.
QUIET_SHARE = 0.15


def _cpu_busy_and_total() -> tuple[int, int]:
    # /proc/stat's first line: user nice system idle iowait irq softirq steal, in ticks.
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def wait_until_quiet(limit: float = 15.0) -> None:
    """Wait, up to *limit* seconds, until the machine's CPUs are mostly idle.

    A server that wrk has just left is still busy for a second or more: hypercorn and
    Quart go on serving the requests in flight, although their clients have gone
    (about 1,000 at 1,024 connections). A run started meanwhile would measure that too.
    """
    deadline = time.monotonic() + limit
    busy, total = _cpu_busy_and_total()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        busy_now, total_now = _cpu_busy_and_total()
        if (busy_now - busy) / max(total_now - total, 1) < QUIET_SHARE:
            return
        busy, total = busy_now, total_now


def run_wrk(
    url: str,
    connections: int,
    seconds: int,
    headers: Sequence[str] = (),
    script: Path | None = None,
    *,
    settle: bool = True,
) -> dict[str, float]:
    """Run wrk against *url*, once the machine is quiet (unless not *settle*); its numbers."""
    if settle:
        wait_until_quiet()
    command = [
        "wrk",
        "--latency",
        f"--threads={min(2, connections)}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=5s",
    ]
    for header in headers:
        command += ["--header", header]
    if script is not None:
        command += ["--script", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    connect, read, write, timeout = (int(n) for n in errors.groups()) if errors else (0, 0, 0, 0)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    total = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    slowest = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", output, re.MULTILINE)
    return {
        "max_ms": float(slowest.group(1)) * _UNIT_MS[slowest.group(2)] if slowest else float("nan"),
        "requests_per_second": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _latency_ms(output, "50"),
        "p99_ms": _latency_ms(output, "99"),
        "requests": int(total.group(1)) if total else 0,
        "socket_errors": connect + read + write,
        "timeouts": timeout,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


# --- servers ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer at {url}:\n{log.read_text()}")


@contextmanager
def serve(command: list[str], env: dict[str, str], workdir: Path, probe: str) -> Iterator[str]:
    """Start a server command with ``{port}`` filled in; yield its base URL."""
    port = free_port()
    log = workdir / f"server-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [part.format(port=port) for part in command],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(base + probe, process, log)
            yield base
        finally:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def quart_app_server(access_log: Path | None = None, *options: str) -> list[str]:
    # As deployed: the supervisor of docs/deploy.md over hypercorn's own workers. Access
    # logging off unless *access_log* names a file (scenario F, every target alike): to
    # the terminal it would measure the terminal.
    return [
        PYTHON, "-m", "quart_app.serve", "-c", str(ROOT / "hypercorn.toml"),
        "--bind", "127.0.0.1:{port}", "--access-logfile", str(access_log or "/dev/null"),
        *options,
    ]  # fmt: skip


SERVING = tomllib.loads((ROOT / "hypercorn.toml").read_text())
SERVING_LABEL = f"{SERVING['workers']} {SERVING['worker_class']}"
# Scenario G's candidates: event loop and listen backlog.
SERVING_CANDIDATES = (("uvloop", 1024), ("asyncio", 1024), ("asyncio", 100))


def gunicorn(
    worker_class: str, app: str = SEED_FLASK_APP, access_log: Path | None = None
) -> list[str]:
    # gunicorn logs no access unless told where to.
    threads = ["--threads", "8"] if worker_class == "gthread" else []
    logging = ["--access-logfile", str(access_log)] if access_log else []
    return [
        PYTHON, "-m", "gunicorn", "--workers", "2", "--worker-class", worker_class, *threads,
        "--bind", "127.0.0.1:{port}", "--backlog", "1024", *logging, app,
    ]  # fmt: skip


def check_same_answers(bases: dict[str, str], headers: Sequence[str]) -> None:
    """Raise unless every server answers the list alike: status, X-Total-Count, JSON.

    The JSON is compared parsed: Flask's jsonify sorts the keys and ends with a newline.
    """
    answers = {}
    for target, base in bases.items():
        request = urllib.request.Request(
            base + "/api/things", headers=dict(header.split(": ", 1) for header in headers)
        )
        with urllib.request.urlopen(request) as answer:
            answers[target] = (answer.status, answer.headers["X-Total-Count"], json.load(answer))
    first, *others = answers
    for target in others:
        if answers[target] != answers[first]:
            raise RuntimeError(f"{target} answers unlike {first}:\n{answers[target]}")


# --- the app's data ---------------------------------------------------------------


async def reset_postgres(name: str = POSTGRES_DATABASE) -> str:
    """Database *name* on BENCH_POSTGRES_ADMIN_URL's server, created if need be and
    emptied; its URL."""
    admin = build_engine(POSTGRES_ADMIN_URL)
    try:
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": name},
            )
            if not exists:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = build_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        await engine.dispose()
    return url


def app_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QUART_SECRET_KEY="bench-secret-key-" * 3,
        QUART_DATABASE_URL=database_url,
        QUART_AUTH_COOKIE_SECURE="false",
        QUART_SESSION_COOKIE_SECURE="false",
        # Scenario D signs in as fast as it can; the limits would turn that into 429s.
        QUART_RATE_LIMIT_ENABLED="false",
        ADMIN_PASSWORD="bench-admin-password",
    )
    return env


def prepare_database(env: dict[str, str]) -> None:
    quart = [PYTHON, "-m", "quart", "--app", "quart_app"]
    subprocess.run([*quart, "init-db"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run(
        [*quart, "create-user", BENCH_USER, "--password-stdin"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        input=f"{BENCH_PASSWORD}\n".encode(),
    )


def bench_token_and_things(base: str) -> str:
    """Sign in as the bench user and give them THINGS_PER_USER things; return the token."""
    request = urllib.request.Request(
        base + "/api/tokens",
        data=json.dumps({"username": BENCH_USER, "password": BENCH_PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        token: str = json.load(answer)["token"]
    for n in range(THINGS_PER_USER):
        create = urllib.request.Request(
            base + "/api/things",
            data=json.dumps({"title": f"thing {n}"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        urllib.request.urlopen(create).close()
    return token


# --- scenarios --------------------------------------------------------------------


def summarise(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Repeated runs as one: median rate and latencies, summed counts."""
    summary = {
        key: statistics.median(run[key] for run in runs)
        for key in ("requests_per_second", "p50_ms", "p99_ms")
    }
    for key in ("requests", "socket_errors", "timeouts", "non_2xx"):
        summary[key] = sum(run[key] for run in runs)
    summary["max_ms"] = max(run["max_ms"] for run in runs)
    return summary


class Bench:
    def __init__(self, seconds: int, workdir: Path, repeat: int = 3) -> None:
        self.seconds = seconds
        self.workdir = workdir
        self.repeat = repeat
        self.results: list[Result] = []

    def record(
        self, scenario: str, target: str, path: str, connections: int, **numbers: float
    ) -> Result:
        extra = {k: v for k, v in numbers.items() if k not in Result.__dataclass_fields__}
        core = {k: v for k, v in numbers.items() if k in Result.__dataclass_fields__}
        result = Result(scenario, target, path, connections, extra=extra, **core)  # type: ignore[arg-type]
        self.results.append(result)
        print(result.line(), flush=True)
        return result

    def record_runs(
        self, scenario: str, target: str, path: str, connections: int, runs: list[dict[str, float]]
    ) -> Result:
        """One result summarising repeated wrk runs (``summarise``), which it keeps."""
        result = self.record(scenario, target, path, connections, **summarise(runs))
        result.runs = runs
        return result

    def load(
        self,
        scenario: str,
        target: str,
        base: str,
        path: str,
        connections: int,
        headers: Sequence[str] = (),
    ) -> Result:
        numbers = run_wrk(base + path, connections, self.seconds, headers)
        return self.record(scenario, target, path, connections, **numbers)

    def scenario_a_and_b_side_by_side(self, targets: dict[str, tuple[str, Endpoint]]) -> None:
        """A and B at 64 connections: every target loaded in turn, ``repeat`` rounds.

        *targets* maps a label to its scenario and endpoint. Drift on the machine hits
        each target alike, and each result is the median of its runs.
        """
        runs: dict[str, list[dict[str, float]]] = {target: [] for target in targets}
        for round_number in range(1, self.repeat + 1):
            for target, (_, (base, path, headers)) in targets.items():
                numbers = run_wrk(base + path, 64, self.seconds, headers)
                runs[target].append(numbers)
                print(
                    f"    run {round_number}/{self.repeat} {target}: "
                    f"{numbers['requests_per_second']:.0f} req/s",
                    flush=True,
                )
        for target, (scenario, (_, path, _)) in targets.items():
            self.record_runs(scenario, target, path, 64, runs[target])

    def scenario_c_sweep(self, targets: dict[str, Endpoint]) -> None:
        """C: each target at every connection count of the sweep, C_ROUNDS rounds.

        A round loads each target at 64, 256 and 1,024 connections back to back, so the
        share kept at 1,024 is a ratio of runs seconds apart (taken against A's rows,
        minutes apart, the machine's drift moved it by more than the margin); each
        result is the median of its runs, its errors summed and its slowest the slowest.
        """
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        for round_number in range(1, C_ROUNDS + 1):
            for target, (base, path, headers) in targets.items():
                for connections in SWEEP:
                    numbers = run_wrk(base + path, connections, self.seconds, headers)
                    runs.setdefault((target, connections), []).append(numbers)
                    print(
                        f"    run {round_number}/{C_ROUNDS} {target} c={connections}: "
                        f"{numbers['requests_per_second']:.0f} req/s",
                        flush=True,
                    )
        for (target, connections), target_runs in runs.items():
            path = targets[target][1]
            self.record_runs("C", target, path, connections, target_runs)

    def scenario_d_logins(self, base: str, token: str) -> None:
        """p99 of /api/status and of the authenticated list, idle and under sign-ins."""
        paths = {"/api/status": [], "/api/things": [f"Authorization: Bearer {token}"]}
        quiet = {
            path: self.load("D", "quart_app, no sign-ins", base, path, 64, headers)
            for path, headers in paths.items()
        }
        login = subprocess.Popen(
            [
                "wrk", "--threads=1", "--connections=8",
                f"--duration={self.seconds * len(paths) + 3}s",
                "--timeout=10s", "--script", str(ROOT / "bench" / "login.lua"),
                base + "/api/tokens",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        time.sleep(1)  # the sign-in load is running before the measured ones start
        # Not settled: the sign-in load keeps the machine busy on purpose.
        busy = {
            path: run_wrk(base + path, 64, self.seconds, headers, settle=False)
            for path, headers in paths.items()
        }
        login_output, _ = login.communicate(timeout=self.seconds * len(paths) + 60)
        logins = re.search(r"Requests/sec:\s+([\d.]+)", login_output)
        for path, numbers in busy.items():
            self.record(
                "D",
                "quart_app, 8 sign-ins at a time",
                path,
                64,
                sign_ins_per_second=float(logins.group(1)) if logins else 0.0,
                p99_ratio=numbers["p99_ms"] / quiet[path].p99_ms,
                **numbers,
            )

    def scenario_e_flask(self, app_base: str) -> None:
        for path in ("/api/status", "/do_thing"):
            self.load("E", f"quart_app (hypercorn, {SERVING_LABEL})", app_base, path, 64)
        for worker_class in ("sync", "gthread"):
            with serve(
                gunicorn(worker_class), dict(os.environ), self.workdir, "/api/status"
            ) as base:
                for path in ("/api/status", "/do_thing"):
                    label = f"Flask seed (gunicorn 2 {worker_class})"
                    self.load("E", label, base, path, 64)

    def scenario_f_flask_list(self, label: str, env: dict[str, str], token: str) -> None:
        """The list on quart_app and written the Flask way, every server logging access.

        The Flask list comes as first written and tuned, each under gunicorn sync and
        gthread. All five servers run at once on the same database, are checked to give
        the same answer, and are loaded in turn, ``repeat`` rounds, so drift on the
        machine hits each of them alike; each target's result is the median of its runs,
        and bench/report.py pairs the rounds' runs for the ratio.
        """
        flask_env = dict(
            env,
            BENCH_SECRET_KEY=env["QUART_SECRET_KEY"],
            BENCH_DATABASE_URL=sync_database_url(env["QUART_DATABASE_URL"]),
        )
        logs = self.workdir / "access-logs"
        logs.mkdir(exist_ok=True)
        commands = {
            f"quart_app {label} (hypercorn, {SERVING_LABEL})": (
                quart_app_server(logs / f"quart_app-{label}.log"),
                env,
            ),
        }
        # Targets named as bench/report.py finds them.
        for name, app in FLASK_LISTS.items():
            for worker_class in FLASK_WORKER_CLASSES:
                log = logs / f"{name.replace(' ', '-')}-{worker_class}-{label}.log"
                commands[f"{name} {label} (gunicorn 2 {worker_class})"] = (
                    gunicorn(worker_class, app, log),
                    flask_env,
                )
        bearer = [f"Authorization: Bearer {token}"]
        with ExitStack() as stack:
            bases = {
                target: stack.enter_context(serve(command, server_env, self.workdir, "/healthz"))
                for target, (command, server_env) in commands.items()
            }
            check_same_answers(bases, bearer)
            runs: dict[str, list[dict[str, float]]] = {target: [] for target in bases}
            order = list(bases)
            for round_number in range(1, self.repeat + 1):
                # Each round starts one target later: the first run of a round measured
                # slower here (bench.cpu, either checkout first), so no target always
                # takes that place.
                shift = (round_number - 1) % len(order)
                for target in order[shift:] + order[:shift]:
                    numbers = run_wrk(bases[target] + "/api/things", 64, self.seconds, bearer)
                    runs[target].append(numbers)
                    print(
                        f"    run {round_number}/{self.repeat} {target}: "
                        f"{numbers['requests_per_second']:.0f} req/s",
                        flush=True,
                    )
        for target, target_runs in runs.items():
            self.record_runs("F", target, "/api/things", 64, target_runs)

    def scenario_s_streams(self) -> None:
        """S: live updates held by BENCH_SSE_SUBSCRIBERS subscribers on quart_app, then
        the same stream in Flask under gunicorn gthread (bench/sse.py, which starts its
        own servers on its own database)."""
        from bench import sse  # it imports this module

        for row in sse.scenario_s(self.workdir, sse.subscriber_counts()):
            print(sse.describe(row), flush=True)
            self.record("S", row.target, sse.STREAM_PATH, row.connections, **row.numbers)

    def scenario_g_serving(self, env: dict[str, str]) -> None:
        """/api/status at 1,024 connections, three runs in a row per serving candidate."""
        for worker_class, backlog in SERVING_CANDIDATES:
            options = ("--worker-class", worker_class, "--backlog", str(backlog))
            target = f"quart_app {worker_class}, backlog {backlog}"
            with serve(quart_app_server(None, *options), env, self.workdir, "/healthz") as base:
                runs = [run_wrk(base + "/api/status", 1024, self.seconds) for _ in range(3)]
            for number, numbers in enumerate(runs, start=1):
                self.record("G", f"{target}, run {number}", "/api/status", 1024, **numbers)


def raise_open_file_limit() -> None:
    """1024 connections need more than the usual 1024 descriptors, in wrk and the server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    else:
        sys.exit("wrk is missing: sudo apt-get install wrk")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument("--output", type=Path, default=DOCS / "benchmarks.json")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="rounds of wrk runs per target in scenarios A, B and F (median kept)",
    )
    parser.add_argument(
        "--scenarios",
        default=os.environ.get("BENCH_SCENARIOS", "ABCDEFGS"),
        help="which scenarios to run, e.g. F for the side-by-side list only (default: all;"
        " BENCH_SCENARIOS)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other scenarios' results already in --output, replacing only the"
        " scenarios run now",
    )
    args = parser.parse_args(argv)
    wanted = set(args.scenarios.upper())
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    ensure_wrk()
    raise_open_file_limit()
    started = datetime.now(UTC)
    scenarios_started = dict.fromkeys(
        sorted(wanted & set("ABCDEFG")), started.isoformat(timespec="seconds")
    )
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        bench = Bench(args.seconds, workdir, args.repeat)
        sqlite_env = app_env(f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}")
        prepare_database(sqlite_env)
        postgres_env = app_env(asyncio.run(reset_postgres()))
        prepare_database(postgres_env)
        with ExitStack() as servers:
            app = servers.enter_context(serve(quart_app_server(), sqlite_env, workdir, "/healthz"))
            app_pg = servers.enter_context(
                serve(quart_app_server(), postgres_env, workdir, "/healthz")
            )
            token, token_pg = bench_token_and_things(app), bench_token_and_things(app_pg)
            env = dict(os.environ)
            bare = servers.enter_context(
                serve(quart_app_server(None, "bench.bare_quart:app"), env, workdir, "/api/status")
            )
            raw = servers.enter_context(
                serve(quart_app_server(None, "bench.raw_asgi:app"), env, workdir, "/")
            )
            status: dict[str, Endpoint] = {
                "quart_app": (app, "/api/status", ()),
                "bare Quart": (bare, "/api/status", ()),
                "raw ASGI": (raw, "/api/status", ()),
            }
            lists: dict[str, Endpoint] = {
                "quart_app SQLite": (app, "/api/things", [f"Authorization: Bearer {token}"]),
                "quart_app PostgreSQL": (
                    app_pg,
                    "/api/things",
                    [f"Authorization: Bearer {token_pg}"],
                ),
            }
            side_by_side: dict[str, tuple[str, Endpoint]] = {}
            if "A" in wanted:
                side_by_side.update({target: ("A", end) for target, end in status.items()})
            if "B" in wanted:
                side_by_side.update({target: ("B", end) for target, end in lists.items()})
            if side_by_side:
                bench.scenario_a_and_b_side_by_side(side_by_side)
            if "C" in wanted:
                bench.scenario_c_sweep({**status, **lists})
            if "D" in wanted:
                bench.scenario_d_logins(app, token)
            if "E" in wanted:
                bench.scenario_e_flask(app)
        if "G" in wanted:
            bench.scenario_g_serving(sqlite_env)
        # F starts its own servers, on the data and with the tokens made above.
        if "F" in wanted:
            bench.scenario_f_flask_list("SQLite", sqlite_env, token)
            bench.scenario_f_flask_list("PostgreSQL", postgres_env, token_pg)
        # S starts its own servers, on its own database.
        if "S" in wanted:
            scenarios_started["S"] = datetime.now(UTC).isoformat(timespec="seconds")
            bench.scenario_s_streams()
    report = {
        "started": started.isoformat(timespec="seconds"),
        "seconds_per_run": args.seconds,
        "repeat": args.repeat,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "scenarios_started": scenarios_started,
        "results": [asdict(result) for result in bench.results],
    }
    if args.merge and args.output.exists():
        report = merged(json.loads(args.output.read_text()), report, wanted)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


def merged(previous: dict[str, Any], report: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    """*previous* with the results of the scenarios in *wanted* replaced by *report*'s.

    The run's header (start, wrk's seconds and rounds) stays *previous*'s unless this
    run loaded something with wrk; ``scenarios_started`` says when each scenario ran.
    """
    kept = [row for row in previous["results"] if row["scenario"] not in wanted]
    header = report if wanted & set("ABCDEFG") else previous
    return {
        **header,
        "scenarios_started": {
            **previous.get("scenarios_started", {}),
            **report["scenarios_started"],
        },
        "results": kept + report["results"],
    }


if __name__ == "__main__":
    main()
