"""Scenario S: live updates (Server-Sent Events) held by thousands, side by side with Flask.

One quart_app instance (``quart_app.serve`` with ``hypercorn.toml``: 2 workers) on
PostgreSQL (``bench_sse``; fan-out by LISTEN/NOTIFY) holds N concurrent subscribers of
``GET /api/things/events`` (``per_user`` streams for each of N / ``per_user`` users)
while things are written at ``writes_per_second`` through ``POST /api/things``, spread
over those users round robin, and ``GET /api/status`` is probed at ``probe_rate``.
Measured:

- delivery latency: each write's title carries ``time.monotonic_ns()`` taken just
  before its request is written to the socket; each subscriber takes
  ``time.monotonic_ns()`` as the bytes carrying the event arrive (first thing in
  ``data_received``). CLOCK_MONOTONIC is one clock for every process of the machine.
- deliveries: expected = for every write answered 201, the subscribers of its user
  that were established (answered 200 and sent ``retry:``) before writes started;
  lost = expected but not received by the end (``drain_seconds`` after the last
  write), duplicates = received more often than expected;
- memory: VmRSS of the worker processes (``/proc/<pid>/status``) before the
  subscribers connect and after, per 1,000 subscribers;
- ``/api/status`` latency, at ``probe_rate``, idle (no subscriber, no write) and under
  the load, as many probes each;
- CPU time (``/proc/<pid>/stat``) of the server's workers, of the subscriber
  processes and of this process (writer and prober) over the load, against the whole
  machine's (``/proc/stat``): what is left is PostgreSQL's and everything else's;
- the garbage collector's pauses in the server's workers (``GC_PROBE``).

The subscribers are raw asyncio ``Protocol``s (HTTP/1.1 head, chunked decoding and
the event parser written out; uvloop when installed) in ``clients`` child processes
(``python -m bench.sse client``), opening their connections at ``open_rate`` a second
in all, and reconnecting as EventSource does (after ``retry:``, with
``Last-Event-ID``) if the server closes a stream.

quart_app runs at each count of BENCH_SSE_SUBSCRIBERS (default 2,500, 5,000 and
10,000), then at the largest with ``QUART_GC_FREEZE_INTERVAL=0`` (the garbage collector
as Python sets it, without ``quart_app.http.collector``: the comparison). Then the same
stream written the Flask way (``bench/flask_sse.py``) under gunicorn gthread, 2
workers, at the largest count, for each thread count of BENCH_SSE_FLASK_THREADS, with
the writes going to a quart_app instance on the same database (the writes cost the
same in both runs). Other knobs: ``Plan.from_environment``.

    .venv/bin/python -m bench.sse --subscribers 1000 --flask-threads 250,600
    .venv/bin/python -m bench.run --scenarios S --merge   # into docs/benchmarks.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SSE_DATABASE = "bench_sse"
STREAM_PATH = "/api/things/events"
PROBE_PATH = "/api/status"
WRITE_PATH = "/api/things"
HOST = "127.0.0.1"
# Seconds a single write or probe may take before it counts as failed.
REQUEST_TIMEOUT = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Bytes in a subscriber process's report line: every delivery, as [sequence, microseconds].
REPORT_LIMIT = 1 << 28


@dataclass
class Plan:
    """What one run does; every field has a BENCH_SSE_* knob in ``from_environment``."""

    subscribers: int = 10_000
    per_user: int = 10
    writes_per_second: float = 50.0
    seconds: float = 30.0
    open_rate: float = 500.0
    probe_rate: float = 20.0
    # As long as the load, so both p99s come from as many probes.
    idle_seconds: float = 30.0
    clients: int = 2
    establish_timeout: float = 20.0
    drain_seconds: float = 3.0

    @property
    def users(self) -> int:
        return math.ceil(self.subscribers / self.per_user)

    @classmethod
    def from_environment(cls, subscribers: int | None = None) -> Plan:
        knobs = {
            "per_user": ("BENCH_SSE_PER_USER", int),
            "writes_per_second": ("BENCH_SSE_WRITES_PER_SECOND", float),
            "seconds": ("BENCH_SSE_SECONDS", float),
            "open_rate": ("BENCH_SSE_OPEN_RATE", float),
            "probe_rate": ("BENCH_SSE_PROBE_RATE", float),
            "idle_seconds": ("BENCH_SSE_IDLE_SECONDS", float),
            "clients": ("BENCH_SSE_CLIENTS", int),
            "establish_timeout": ("BENCH_SSE_ESTABLISH_TIMEOUT", float),
        }
        values: dict[str, Any] = {}
        for name, (variable, kind) in knobs.items():
            if variable in os.environ:
                values[name] = kind(os.environ[variable])
        if subscribers is not None:
            values["subscribers"] = subscribers
        return cls(**values)


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


# The contract's count last; the smaller ones show how the latency grows with it.
DEFAULT_SUBSCRIBERS = "2500,5000,10000"


def subscriber_counts() -> list[int]:
    """BENCH_SSE_SUBSCRIBERS: the counts quart_app is run at, in turn; the comparison and
    the Flask servers run at the largest."""
    return _numbers(os.environ.get("BENCH_SSE_SUBSCRIBERS", DEFAULT_SUBSCRIBERS))


def flask_thread_counts(subscribers: int) -> list[int]:
    """BENCH_SSE_FLASK_THREADS (threads per gunicorn worker), by default a quarter of the
    subscribers (the pair holds half) and half plus 5% (room for all, and the probe)."""
    raw = os.environ.get("BENCH_SSE_FLASK_THREADS")
    if raw is not None:  # "" runs no Flask
        return _numbers(raw)
    return [max(subscribers // 4, 8), subscribers // 2 + max(subscribers // 20, 16)]


# --- statistics -------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted *values*; NaN when empty."""
    if not values:
        return float("nan")
    rank = max(math.ceil(share * len(values)), 1)
    return float(values[min(rank, len(values)) - 1])


# --- the subscribers (child processes) ----------------------------------------------

_SIZE, _DATA, _CRLF = 0, 1, 2


@dataclass
class ClientState:
    """What one subscriber process counted."""

    port: int
    patience: float
    established: int = 0
    by_user: Counter[int] = field(default_factory=Counter)
    refused: Counter[int] = field(default_factory=Counter)
    connect_errors: int = 0
    stalled: int = 0
    # Established streams the server closed, and the reconnections that followed.
    dropped: int = 0
    reconnected: int = 0
    reconnect_failures: Counter[str] = field(default_factory=Counter)
    ended: Counter[str] = field(default_factory=Counter)
    keepalives: int = 0
    out_of_order: int = 0
    # (write sequence number, microseconds from just before the POST to arrival)
    deliveries: list[tuple[int, int]] = field(default_factory=list)
    open_transports: set[asyncio.Transport] = field(default_factory=set)
    closing: bool = False


@dataclass
class Subscription:
    """One subscriber, as a browser's EventSource is: it outlives its connections."""

    user: int
    token: str
    last_id: int | None = None
    retry: float = 2.0

    def request(self, port: int) -> bytes:
        resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id is not None else ""
        return (
            f"GET {STREAM_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        ).encode()


class Subscriber(asyncio.Protocol):
    """One connection of a subscription: HTTP/1.1 head, chunked body, SSE events."""

    def __init__(self, state: ClientState, subscription: Subscription) -> None:
        self.state = state
        self.subscription = subscription
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.established: asyncio.Future[int] = loop.create_future()
        self.head = bytearray()
        self.in_body = False
        self.chunked = False
        self.raw = bytearray()
        self.chunk_state = _SIZE
        self.chunk_left = 0
        self.text = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's classes.
        self.transport = cast(asyncio.Transport, transport)
        self.state.open_transports.add(self.transport)
        self.transport.write(self.subscription.request(self.state.port))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.state.open_transports.discard(self.transport)
        if not self.established.done():
            self.established.set_result(0)
        elif self.established.cancelled():  # given up on: counted as stalled
            return
        elif self.established.result() == 200 and not self.state.closing:
            # As EventSource does: after the retry delay, again, with Last-Event-ID.
            self.state.dropped += 1
            asyncio.get_running_loop().call_later(
                self.subscription.retry,
                lambda: _background(_reconnect(self.state, self.subscription)),
            )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.head[:end]).split(b"\r\n")
            data = bytes(self.head[end + 4 :])
            self.head = bytearray()
            status = int(head[0].split()[1])
            if status != 200:
                self.established.set_result(status)
                assert self.transport is not None
                self.transport.close()
                return
            self.in_body = True
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"transfer-encoding":
                    self.chunked = b"chunked" in value.lower()
        if self.chunked:
            self._dechunk(data)
        else:
            self.text += data
        self._events(now)

    def _dechunk(self, data: bytes) -> None:
        raw = self.raw
        raw += data
        position = 0
        while True:
            if self.chunk_state == _SIZE:
                line_end = raw.find(b"\r\n", position)
                if line_end < 0:
                    break
                size = int(bytes(raw[position:line_end]).split(b";")[0], 16)
                position = line_end + 2
                if size == 0:  # the end of the answer
                    break
                self.chunk_left, self.chunk_state = size, _DATA
            elif self.chunk_state == _DATA:
                take = min(len(raw) - position, self.chunk_left)
                if take == 0:
                    break
                self.text += raw[position : position + take]
                position += take
                self.chunk_left -= take
                if self.chunk_left == 0:
                    self.chunk_state = _CRLF
            else:
                if len(raw) - position < 2:
                    break
                position += 2
                self.chunk_state = _SIZE
        del raw[:position]

    def _events(self, now: int) -> None:
        while (end := self.text.find(b"\n\n")) >= 0:
            block = bytes(self.text[:end])
            del self.text[: end + 2]
            self._event(block, now)

    def _event(self, block: bytes, now: int) -> None:
        kind, data, event_id = b"message", b"", None
        subscription = self.subscription
        for line in block.split(b"\n"):
            if line.startswith(b":"):
                self.state.keepalives += 1
                continue
            name, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if name == b"retry":
                subscription.retry = int(value) / 1000
                if not self.established.done():
                    self.established.set_result(200)
            elif name == b"id":
                event_id = int(value)
            elif name == b"event":
                kind = value
            elif name == b"data":
                data = value
        if event_id is not None:
            if subscription.last_id is not None and event_id <= subscription.last_id:
                self.state.out_of_order += 1
            subscription.last_id = event_id
        if kind.startswith(b"thing."):
            title = json.loads(data).get("title", "")
            parts = title.split()
            if len(parts) == 3 and parts[0] == "sse":
                sent = int(parts[2])
                self.state.deliveries.append((int(parts[1]), (now - sent) // 1000))
        elif kind == b"end":
            self.state.ended[json.loads(data).get("reason", "?")] += 1


_tasks: set[asyncio.Task[None]] = set()


def _background(coroutine: Any) -> None:
    """Run *coroutine* as a task kept until it ends."""
    task = asyncio.ensure_future(coroutine)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _connect(state: ClientState, subscription: Subscription) -> int:
    """One connection for *subscription*: its status once started (0: none), or
    TimeoutError after the state's patience, or OSError."""
    loop = asyncio.get_running_loop()
    subscriber: Subscriber | None = None
    try:
        async with asyncio.timeout(state.patience):
            _, subscriber = await loop.create_connection(
                lambda: Subscriber(state, subscription), HOST, state.port
            )
            return await subscriber.established
    except TimeoutError:
        if subscriber is not None and subscriber.transport is not None:
            subscriber.transport.abort()
        raise


async def _open_one(state: ClientState, subscription: Subscription) -> None:
    try:
        status = await _connect(state, subscription)
    except TimeoutError:
        state.stalled += 1
        return
    except OSError:
        state.connect_errors += 1
        return
    if status == 200:
        state.established += 1
        state.by_user[subscription.user] += 1
    elif status:
        state.refused[status] += 1
    else:
        state.connect_errors += 1


async def _reconnect(state: ClientState, subscription: Subscription) -> None:
    """Reconnect a dropped subscription, again after each failure (as api.js does on a
    429 or 503), until the run ends."""
    while not state.closing:
        try:
            status = await _connect(state, subscription)
        except (TimeoutError, OSError) as error:
            state.reconnect_failures[type(error).__name__] += 1
        else:
            if status == 200:
                state.reconnected += 1
                return
            state.reconnect_failures[str(status)] += 1
        await asyncio.sleep(subscription.retry)


async def client_main(port: int, pairs: list[list[Any]], rate: float, patience: float) -> None:
    """Open every subscription in *pairs* (``[user, token]``) at *rate* a second, each
    given *patience* seconds to start; say so on stdout; on a line (or the end) of
    stdin, report and close them."""
    state = ClientState(port, patience)
    loop = asyncio.get_running_loop()
    started = loop.time()
    opening = []
    for number, (user, token) in enumerate(pairs):
        delay = started + number / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        opening.append(asyncio.create_task(_open_one(state, Subscription(user, token))))
    await asyncio.gather(*opening)
    summary = {
        "phase": "opened",
        "seconds": loop.time() - started,
        "established": state.established,
        "by_user": state.by_user,
        "refused": state.refused,
        "connect_errors": state.connect_errors,
        "stalled": state.stalled,
        "dropped": state.dropped,
    }
    print(json.dumps(summary), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    state.closing = True
    report = {
        "phase": "report",
        "deliveries": state.deliveries,
        "dropped": state.dropped,
        "reconnected": state.reconnected,
        "reconnect_failures": state.reconnect_failures,
        "ended": state.ended,
        "keepalives": state.keepalives,
        "out_of_order": state.out_of_order,
    }
    print(json.dumps(report), flush=True)
    for transport in list(state.open_transports):
        transport.abort()


def run_client(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sse client")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--subscriptions", type=Path, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    pairs = json.loads(args.subscriptions.read_text())
    main = client_main(args.port, pairs, args.rate, args.timeout)
    try:
        import uvloop
    except ImportError:  # the asyncio loop costs the client more CPU, nothing else
        asyncio.run(main)
    else:
        uvloop.run(main)


# --- writes and probes (this process) -----------------------------------------------


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: a request at a time, Content-Length answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True
        self.idle_since = time.monotonic()

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                self.reusable = False
        body = await self.reader.readexactly(length)
        return status, body


# Seconds a connection may stay idle before it is not reused: under the servers' own
# keep-alive limits (hypercorn.toml's 5 s, gunicorn's 2 s), so no request is sent on a
# connection the server is closing.
IDLE_REUSE = 1.0


class HttpClient:
    """Connections to one server, opened as needed and reused while fresh."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[HttpConnection] = []

    @asynccontextmanager
    async def connection(self) -> Any:
        connection = None
        while self.idle and connection is None:
            candidate = self.idle.pop()
            if time.monotonic() - candidate.idle_since < IDLE_REUSE:
                connection = candidate
            else:
                candidate.writer.close()
        if connection is None:
            connection = HttpConnection(*await asyncio.open_connection(HOST, self.port))
        try:
            yield connection
        except BaseException:
            connection.reusable = False
            raise
        finally:
            if connection.reusable:
                connection.idle_since = time.monotonic()
                self.idle.append(connection)
            else:
                connection.writer.close()

    def close(self) -> None:
        for connection in self.idle:
            connection.writer.close()
        self.idle.clear()


def _request(method: str, port: int, path: str, token: str | None, body: bytes = b"") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    kind = "Content-Type: application/json\r\n" if body else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{auth}{kind}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class Writes:
    """The writes of one run: when each was sent, and the answers."""

    # sequence number -> (user, monotonic ns just before sending, ns until the 201)
    accepted: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    failed: Counter[str] = field(default_factory=Counter)


async def write_things(port: int, tokens: Sequence[str], plan: Plan, writes: Writes) -> None:
    """POST /api/things at plan.writes_per_second for plan.seconds, users round robin."""
    client = HttpClient(port)
    total = int(plan.writes_per_second * plan.seconds)
    users = plan.users

    async def write(sequence: int) -> None:
        user = sequence % users
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT), client.connection() as connection:
                sent = time.monotonic_ns()
                body = json.dumps({"title": f"sse {sequence} {sent}"}).encode()
                request = _request("POST", port, WRITE_PATH, tokens[user], body)
                status, _ = await connection.exchange(request)
                answered = time.monotonic_ns()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            writes.failed[type(error).__name__] += 1
            return
        if status == 201:
            writes.accepted[sequence] = (user, sent, answered - sent)
        else:
            writes.failed[str(status)] += 1

    try:
        await _paced(total, plan.writes_per_second, write)
    finally:
        client.close()


async def probe_status(port: int, rate: float, seconds: float) -> tuple[list[float], Counter[str]]:
    """GET /api/status at *rate* for *seconds*: sorted latencies (ms), failures by kind.

    Each latency runs from the probe's scheduled start, so a wait for a connection
    counts too.
    """
    client = HttpClient(port)
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    request = _request("GET", port, PROBE_PATH, None)

    async def probe(_: int) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT), client.connection() as connection:
                status, _ = await connection.exchange(request)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            failures[type(error).__name__] += 1
            return
        if status != 200:
            failures[str(status)] += 1
            return
        latencies.append((time.perf_counter() - started) * 1000)

    try:
        await _paced(int(rate * seconds), rate, probe)
    finally:
        client.close()
    return sorted(latencies), failures


async def _paced(count: int, rate: float, action: Any) -> None:
    """Start action(0), action(1), ... *rate* a second (open loop); wait for them all."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = []
    for number in range(count):
        delay = started + number / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(action(number)))
    await asyncio.gather(*tasks)


# --- processes ----------------------------------------------------------------------


def worker_pids(port: int, expected: int = 2, within: float = 30.0) -> list[int]:
    """The *expected* processes serving *port*: those with its listening socket, less any
    parent of another (gunicorn's arbiter shares the workers' socket). Waits for them:
    the server answered once one worker listened, the other may still be starting."""
    deadline = time.monotonic() + within
    while True:
        listing = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout
        pids = {int(pid) for pid in re.findall(r"pid=(\d+)", listing)}
        workers = sorted(pids - {_parent(pid) for pid in pids})
        if len(workers) >= expected or time.monotonic() > deadline:
            return workers
        time.sleep(0.2)


def _parent(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def _stat_fields(pid: int) -> list[str]:
    # /proc/<pid>/stat after the command's closing parenthesis: state, ppid, ...
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU seconds the processes *pids* have used, all together."""
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib(pids: Sequence[int]) -> float:
    """VmRSS of *pids*, summed, in MiB."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def machine_busy_and_total() -> tuple[int, int]:
    """/proc/stat's busy and total ticks, all CPUs."""
    with open("/proc/stat") as stat:
        ticks = [int(part) for part in stat.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


@dataclass
class CpuMark:
    """CPU seconds used so far by each party (a list of processes), this process's, and
    the whole machine's ticks, at a moment."""

    wall: float
    parties: dict[str, float]
    own: float
    busy_ticks: int
    total_ticks: int

    @classmethod
    def take(cls, parties: Mapping[str, Sequence[int]]) -> CpuMark:
        busy, total = machine_busy_and_total()
        used = {party: cpu_seconds(pids) for party, pids in parties.items()}
        return cls(time.monotonic(), used, own_cpu_seconds(), busy, total)

    def cores_since(self, earlier: CpuMark) -> dict[str, float]:
        """Cores in use on average between *earlier* and now, by party; "others" is the
        rest of the machine's (PostgreSQL's, and whatever else ran)."""
        wall = self.wall - earlier.wall
        cores = {
            party: (used - earlier.parties[party]) / wall for party, used in self.parties.items()
        }
        cores["writer_prober"] = (self.own - earlier.own) / wall
        busy = (self.busy_ticks - earlier.busy_ticks) / max(
            self.total_ticks - earlier.total_ticks, 1
        )
        cores["others"] = busy * (os.cpu_count() or 1) - sum(cores.values())
        cores["machine"] = busy * (os.cpu_count() or 1)
        return cores


# --- the collector's pauses ----------------------------------------------------------

# What the servers' workers run first (``sitecustomize``, from PYTHONPATH) when
# BENCH_SSE_GC_LOG names a directory: every full collection, and every younger one of
# 5 ms or more, logged as "<monotonic end> <generation> <seconds>" to gc-<pid>.log.
# gunicorn's workers inherit it by fork.
GC_PROBE = """\
import gc, os, time

_log = os.environ.get("BENCH_SSE_GC_LOG")
if _log:
    _started = {}

    def _observe(phase, info):
        generation = info["generation"]
        if phase == "start":
            _started[generation] = time.monotonic()
            return
        took = time.monotonic() - _started.pop(generation, time.monotonic())
        if generation == 2 or took >= 0.005:
            with open(f"{_log}/gc-{os.getpid()}.log", "a") as out:
                out.write(f"{time.monotonic():.6f} {generation} {took:.6f}\\n")

    gc.callbacks.append(_observe)
"""


def gc_probe_env(env: dict[str, str], workdir: Path, name: str) -> dict[str, str]:
    """*env* for a server whose workers log their collections into a new directory."""
    probe = workdir / "gc-probe"
    probe.mkdir(exist_ok=True)
    (probe / "sitecustomize.py").write_text(GC_PROBE)
    log = workdir / f"gc-{name}"
    log.mkdir()
    path = os.pathsep.join(filter(None, [str(probe), env.get("PYTHONPATH")]))
    return dict(env, PYTHONPATH=path, BENCH_SSE_GC_LOG=str(log))


def gc_pauses(log: Path, pids: Sequence[int], start: float, end: float) -> dict[str, float]:
    """The collections logged by *pids* that ended between *start* and *end*
    (monotonic seconds): full ones counted, longest and summed; younger ones' longest."""
    full: list[float] = []
    young: list[float] = [0.0]
    for pid in pids:
        path = log / f"gc-{pid}.log"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            ended, generation, took = line.split()
            if start <= float(ended) <= end:
                (full if generation == "2" else young).append(float(took) * 1000)
    return {
        "gc_full_collections": len(full),
        "gc_full_max_ms": max(full, default=0.0),
        "gc_full_total_ms": sum(full),
        "gc_young_max_ms": max(young),
    }


# --- one run ------------------------------------------------------------------------


async def _read_json_line(process: asyncio.subprocess.Process, within: float) -> dict[str, Any]:
    assert process.stdout is not None
    async with asyncio.timeout(within):
        line = await process.stdout.readline()
    if not line:
        raise RuntimeError(f"subscriber process {process.pid} ended early")
    found: dict[str, Any] = json.loads(line)
    return found


async def measure(
    plan: Plan,
    stream_port: int,
    write_port: int,
    tokens: Sequence[str],
    workdir: Path,
    gc_log: Path | None = None,
) -> dict[str, float]:
    """One run against the server on *stream_port* (writes to *write_port*): its numbers.

    *gc_log*: where the stream server's workers log their collections (``gc_probe_env``).
    """
    workers = worker_pids(stream_port)
    await probe_status(stream_port, plan.probe_rate, 2.0)  # warm-up, not counted
    idle, idle_failures = await probe_status(stream_port, plan.probe_rate, plan.idle_seconds)
    rss_before = rss_mib(workers)

    # Subscription j is user j // per_user's; child c opens every clients-th one.
    clients: list[asyncio.subprocess.Process] = []
    for number in range(plan.clients):
        pairs = [
            [j // plan.per_user, tokens[j // plan.per_user]]
            for j in range(number, plan.subscribers, plan.clients)
        ]
        path = workdir / f"subscriptions-{stream_port}-{number}.json"
        path.write_text(json.dumps(pairs))
        clients.append(
            await asyncio.create_subprocess_exec(
                PYTHON, "-m", "bench.sse", "client", "--port", str(stream_port),
                "--subscriptions", str(path), "--rate", str(plan.open_rate / plan.clients),
                "--timeout", str(plan.establish_timeout),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
                limit=REPORT_LIMIT,
            )
        )  # fmt: skip
    parties = {"workers": workers, "clients": [client.pid for client in clients]}
    if write_port != stream_port:
        parties["write_server"] = worker_pids(write_port)
    try:
        opening_mark = CpuMark.take(parties)
        opening_limit = plan.subscribers / plan.open_rate + plan.establish_timeout + 60
        opened = [await _read_json_line(client, opening_limit) for client in clients]
        opening_cores = CpuMark.take(parties).cores_since(opening_mark)
        held_by_user: Counter[int] = Counter()
        for summary in opened:
            held_by_user.update({int(user): count for user, count in summary["by_user"].items()})
        await asyncio.sleep(3.0)  # let the workers settle before reading their memory
        rss_after = rss_mib(workers)

        writes = Writes()
        start_mark = CpuMark.take(parties)
        load = asyncio.gather(
            write_things(write_port, tokens, plan, writes),
            probe_status(stream_port, plan.probe_rate, plan.seconds),
        )
        _, (busy, busy_failures) = await load
        end_mark = CpuMark.take(parties)
        load_cores = end_mark.cores_since(start_mark)
        await asyncio.sleep(plan.drain_seconds)
        reports = []
        for client in clients:
            assert client.stdin is not None
            client.stdin.write(b"report\n")
            await client.stdin.drain()
            reports.append(await _read_json_line(client, 60))
    finally:
        for client in clients:
            # An end of input tells a client that has not reported to report and go.
            if client.stdin is not None and not client.stdin.is_closing():
                client.stdin.close()
            try:
                async with asyncio.timeout(30):
                    await client.wait()
            except TimeoutError:
                client.kill()
                await client.wait()

    received: Counter[int] = Counter()
    from_send: list[float] = []
    after_answer: list[float] = []
    for report in reports:
        for sequence, microseconds in report["deliveries"]:
            received[sequence] += 1
            from_send.append(microseconds / 1000)
            if sequence in writes.accepted:
                after_answer.append((microseconds * 1000 - writes.accepted[sequence][2]) / 1e6)
    expected = {seq: held_by_user[user] for seq, (user, _, _) in writes.accepted.items()}
    lost = sum(max(count - received[seq], 0) for seq, count in expected.items())
    extra = sum(max(count - expected.get(seq, 0), 0) for seq, count in received.items())
    from_send.sort()
    after_answer.sort()
    write_ms = sorted(answer / 1e6 for _, _, answer in writes.accepted.values())
    held = sum(summary["established"] for summary in opened)
    refused = sum(sum(summary["refused"].values()) for summary in opened)
    numbers: dict[str, float] = {
        "attempted": plan.subscribers,
        "held": held,
        "requests": len(from_send),
        "requests_per_second": len(from_send) / plan.seconds,
        "p50_ms": percentile(from_send, 0.50),
        "p99_ms": percentile(from_send, 0.99),
        "max_ms": from_send[-1] if from_send else float("nan"),
        "socket_errors": sum(s["connect_errors"] for s in opened)
        + sum(r["dropped"] for r in reports),
        "timeouts": sum(summary["stalled"] for summary in opened),
        "non_2xx": refused,
        "expected": sum(expected.values()),
        "delivered": sum(min(received[seq], count) for seq, count in expected.items()),
        "lost": lost,
        "duplicates": extra,
        "out_of_order": sum(report["out_of_order"] for report in reports),
        "dropped": sum(report["dropped"] for report in reports),
        "reconnected": sum(report["reconnected"] for report in reports),
        "reconnect_failures": sum(sum(r["reconnect_failures"].values()) for r in reports),
        "stream_ends": sum(sum(report["ended"].values()) for report in reports),
        "keepalives": sum(report["keepalives"] for report in reports),
        "after_answer_p50_ms": percentile(after_answer, 0.50),
        "after_answer_p99_ms": percentile(after_answer, 0.99),
        "writes": len(writes.accepted),
        "writes_failed": sum(writes.failed.values()),
        "write_p50_ms": percentile(write_ms, 0.50),
        "write_p99_ms": percentile(write_ms, 0.99),
        "open_seconds": max(summary["seconds"] for summary in opened),
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_per_1000_mib": (rss_after - rss_before) / held * 1000 if held else float("nan"),
        "status_idle_p50_ms": percentile(idle, 0.50),
        "status_idle_p99_ms": percentile(idle, 0.99),
        "status_idle_failures": sum(idle_failures.values()),
        "status_load_p50_ms": percentile(busy, 0.50),
        "status_load_p99_ms": percentile(busy, 0.99),
        "status_load_max_ms": busy[-1] if busy else float("nan"),
        "status_load_failures": sum(busy_failures.values()),
        "status_p99_ratio": percentile(busy, 0.99) / percentile(idle, 0.99),
        "worker_processes": len(workers),
    }
    numbers.update({name: float(value) for name, value in asdict(plan).items()})
    if gc_log is not None:
        numbers.update(gc_pauses(gc_log, workers, start_mark.wall, end_mark.wall))
    refusals: Counter[str] = Counter()
    for summary in opened:
        refusals.update(summary["refused"])
    for status, count in refusals.items():
        numbers[f"refused_{status}"] = count
    numbers["connect_errors"] = sum(summary["connect_errors"] for summary in opened)
    for reason, count in writes.failed.items():
        numbers[f"writes_failed_{reason}"] = count
    for reason, count in busy_failures.items():
        numbers[f"status_load_failed_{reason}"] = count
    for party, cores in load_cores.items():
        numbers[f"cores_{party}"] = cores
    for party, cores in opening_cores.items():
        numbers[f"opening_cores_{party}"] = cores
    return numbers


# --- servers and data ---------------------------------------------------------------


# Scenario S's quart_app targets: as deployed, and with Python's collector as it comes.
QUART_TARGET = "quart_app (hypercorn.toml: 2 asyncio workers)"
QUART_PYTHON_GC_TARGET = "quart_app (hypercorn.toml, GC_FREEZE_INTERVAL=0: comparison)"


def flask_server(threads: int) -> list[str]:
    """gunicorn gthread, 2 workers, *threads* per worker and as many connections: a
    worker with every thread streaming stops accepting, so the other one takes the
    next connection instead of queueing it behind a busy thread."""
    return [
        PYTHON, "-m", "gunicorn", "--workers", "2", "--worker-class", "gthread",
        "--threads", str(threads), "--worker-connections", str(threads),
        "--bind", "127.0.0.1:{port}", "--backlog", "1024", "--graceful-timeout", "3",
        "bench.flask_sse:create_app()",
    ]  # fmt: skip


async def seed_users(database_url: str, secret_key: str, count: int) -> list[str]:
    """*count* users, each with a bearer token, made in-process (no sign-in: the users'
    one password hash is computed once); their tokens, in user order."""
    from quart_app import create_app
    from quart_app.data.accounts import insert_user
    from quart_app.data.database import db
    from quart_app.data.models import SessionKind
    from quart_app.data.session_store import start_session
    from quart_app.security.auth import app_auth
    from quart_app.security.passwords import passwords

    app = create_app(
        {"DATABASE_URL": database_url, "SECRET_KEY": secret_key, "RATE_LIMIT_ENABLED": False}
    )
    tokens = []
    async with app.app_context():
        password_hash = await passwords.hash("bench-sse-password")
        for number in range(count):
            account = await insert_user(f"sse{number:05d}", password_hash)
            started = await start_session(account, SessionKind.TOKEN, password_hash)
            assert started is not None
            tokens.append(app_auth().dump_token(started[0]))
        await db.close()
    return tokens


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


@contextmanager
def _servers(
    commands: Sequence[tuple[list[str], dict[str, str]]], workdir: Path
) -> Iterator[list[str]]:
    from bench.run import serve

    with ExitStack() as stack:
        yield [
            stack.enter_context(serve(command, env, workdir, "/healthz"))
            for command, env in commands
        ]


def _measured(
    servers: Sequence[tuple[list[str], dict[str, str]]],
    plan: Plan,
    tokens: Sequence[str],
    workdir: Path,
) -> dict[str, float]:
    """Start *servers*, wait for a quiet machine, measure: the last server holds the
    streams (its workers' collections logged), the first takes the writes."""
    from bench.run import wait_until_quiet

    with _servers(servers, workdir) as bases:
        wait_until_quiet()
        state = machine_state()
        gc_log = Path(servers[-1][1]["BENCH_SSE_GC_LOG"])
        numbers = asyncio.run(
            measure(plan, _port(bases[-1]), _port(bases[0]), tokens, workdir, gc_log)
        )
    numbers.update({f"machine_{key}": value for key, value in state.items()})
    return numbers


def machine_state() -> dict[str, float]:
    """The load averages and the share of the CPUs busy over the last second."""
    busy, total = machine_busy_and_total()
    time.sleep(1.0)
    busy_now, total_now = machine_busy_and_total()
    one, five, fifteen = os.getloadavg()
    return {
        "load_1m": one,
        "load_5m": five,
        "load_15m": fifteen,
        "busy_share": (busy_now - busy) / max(total_now - total, 1),
    }


@dataclass
class Row:
    """One run of scenario S, as bench/run.py records it."""

    target: str
    connections: int
    numbers: dict[str, float]


def scenario_s(
    workdir: Path,
    counts: Sequence[int],
    flask_threads: Sequence[int] | None = None,
) -> Iterator[Row]:
    """quart_app at each subscriber count in *counts*, then at the largest with Python's
    collector as it comes (unless BENCH_SSE_GC_COMPARISON=0), then Flask gthread at the largest,
    for each thread count in *flask_threads* (None: ``flask_thread_counts``)."""
    from bench.flask_things import sync_database_url
    from bench.run import app_env, quart_app_server, reset_postgres

    largest = max(counts)
    plans = {count: Plan.from_environment(count) for count in counts}
    database_url = asyncio.run(reset_postgres(SSE_DATABASE))
    env = app_env(database_url)
    env["QUART_EVENT_STREAMS_PER_USER"] = str(plans[largest].per_user)
    subprocess.run(
        [PYTHON, "-m", "quart", "--app", "quart_app", "init-db"],
        env=env, cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    tokens = asyncio.run(seed_users(database_url, env["QUART_SECRET_KEY"], plans[largest].users))
    quart = (quart_app_server(None), env)
    # (target, environment, subscribers): as deployed at each count, then without
    # quart_app.http.collector at the largest.
    runs = [(QUART_TARGET, env, count) for count in sorted(counts)]
    if os.environ.get("BENCH_SSE_GC_COMPARISON", "1") != "0":
        runs.append((QUART_PYTHON_GC_TARGET, dict(env, QUART_GC_FREEZE_INTERVAL="0"), largest))
    for number, (label, run_env, count) in enumerate(runs):
        server_env = gc_probe_env(run_env, workdir, f"quart-{number}")
        numbers = _measured([(quart[0], server_env)], plans[count], tokens, workdir)
        yield Row(f"{label}, {count} subscribers", int(numbers["held"]), numbers)
    if flask_threads is None:
        flask_threads = flask_thread_counts(largest)
    if not flask_threads:
        return
    flask_env = dict(
        env,
        BENCH_SECRET_KEY=env["QUART_SECRET_KEY"],
        BENCH_DATABASE_URL=sync_database_url(database_url),
        BENCH_STREAMS_PER_USER=str(plans[largest].per_user),
    )
    for threads in flask_threads:
        server_env = gc_probe_env(flask_env, workdir, f"flask-{threads}")
        servers = [quart, (flask_server(threads), server_env)]
        numbers = _measured(servers, plans[largest], tokens, workdir)
        numbers["threads_per_worker"] = threads
        target = f"Flask (gunicorn 2 gthread, {threads} threads), {largest} subscribers"
        yield Row(target, int(numbers["held"]), numbers)


def describe(row: Row) -> str:
    n = row.numbers
    return (
        f"S   {row.target}: held {n['held']:.0f}/{n['attempted']:.0f} "
        f"(stalled {n['timeouts']:.0f}, refused {n['non_2xx']:.0f}, "
        f"errors {n['socket_errors']:.0f}; dropped {n['dropped']:.0f}, reconnected "
        f"{n['reconnected']:.0f}); delivery p50 {n['p50_ms']:.0f} ms "
        f"p99 {n['p99_ms']:.0f} ms max {n['max_ms']:.0f} ms; "
        f"delivered {n['delivered']:.0f}/{n['expected']:.0f} lost {n['lost']:.0f} "
        f"duplicates {n['duplicates']:.0f}; RSS {n['rss_before_mib']:.0f} -> "
        f"{n['rss_after_mib']:.0f} MiB "
        f"({n['rss_per_1000_mib']:.1f} MiB per 1,000); /api/status p99 "
        f"{n['status_idle_p99_ms']:.1f} idle, {n['status_load_p99_ms']:.1f} ms loaded "
        f"(x{n['status_p99_ratio']:.2f}, {n['status_load_failures']:.0f} failed); cores: "
        f"workers {n['cores_workers']:.2f}, clients {n['cores_clients']:.2f}, "
        f"writer+prober {n['cores_writer_prober']:.2f}, machine {n['cores_machine']:.2f}; "
        f"full GCs {n.get('gc_full_collections', 0):.0f}, longest "
        f"{n.get('gc_full_max_ms', 0):.0f} ms"
    )


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["client"]:
        run_client(arguments[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--subscribers",
        default=os.environ.get("BENCH_SSE_SUBSCRIBERS", DEFAULT_SUBSCRIBERS),
        help="subscriber counts for quart_app, comma-separated (BENCH_SSE_SUBSCRIBERS)",
    )
    parser.add_argument(
        "--flask-threads",
        default=os.environ.get("BENCH_SSE_FLASK_THREADS"),
        help="gthread threads per worker, comma-separated (BENCH_SSE_FLASK_THREADS)",
    )
    parser.add_argument("--no-flask", action="store_true", help="quart_app only")
    parser.add_argument("--output", type=Path, help="write the rows here as JSON")
    args = parser.parse_args(arguments)
    from bench.run import raise_open_file_limit

    raise_open_file_limit()
    counts = _numbers(args.subscribers)
    threads = None if args.flask_threads is None else _numbers(args.flask_threads)
    if args.no_flask:
        threads = []
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for row in scenario_s(Path(scratch), counts, threads):
            print(describe(row), flush=True)
            rows.append(asdict(row))
    if args.output:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
