"""Denial-of-service attacks on the production serving command, each with a normal client.

One server (``python -m quart_app.serve -c hypercorn.toml``, SQLite) for the module.
Every test attacks it from 127.0.0.1, bounded in connections, bytes and seconds, and
meanwhile a normal client asks for ``/api/status`` on a new connection every
``POLL_INTERVAL``: each of those must be answered 200 within ``ANSWERED_WITHIN``.
What the attack measured (how long connections lived, streams accepted before the
cut) is printed (``pytest -s``), never asserted against a clock.

Where hypercorn 0.18 falls short (more reset streams than ``keep_alive_max_requests``
reached the app at full speed, and a client with requests in flight when the limit was
reached over HTTP/2 lost them), quart_app/upstream/hypercorn.py mends it; the tests
here hold the served app to the requirement, tests/test_upstream.py shows the bug.
"""

from __future__ import annotations

import asyncio
import re
import resource
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from statistics import median
from typing import Any, TypeVar

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from hpack import Encoder
from hypercorn.config import Config
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.helpers.live import (
    ROOT,
    LiveServer,
    production_server,
)

T = TypeVar("T")

CONFIG = Config.from_toml(ROOT / "hypercorn.toml")
# A normal client's request must be answered within this (a generous bound, not a
# latency target: 2 cores shared with the attacker and whatever else runs).
ANSWERED_WITHIN = 10.0
POLL_INTERVAL = 0.2
# Connections the server should cut (at keep_alive_timeout, 5 s) must be gone by then.
CUT_WITHIN = 20
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL = 0x8  # RST_STREAM's error code, as a browser resets a stream it gave up on


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One production server (quart_app.serve) on SQLite for the whole module."""
    # Before the server starts, so its workers inherit it, as production's do from the
    # unit's LimitNOFILE (docs/deploy.md): at 1,024 the 2,000 idle connections would
    # exhaust a worker's descriptors.
    raise_open_file_limit()
    with production_server(tmp_path_factory.mktemp("attacks")) as server:
        yield server


def raise_open_file_limit() -> None:
    """Thousands of connections need more than the usual 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def log_since(server: LiveServer, start: int) -> str:
    """What the server has logged since its log was *start* bytes long."""
    with server.log_path.open() as log:
        log.seek(start)
        return log.read()


def unhandled_errors(logged: str) -> list[str]:
    """The last line of each traceback hypercorn logged (an exception it did not handle)."""
    return re.findall(r"(\w+Error: .*)$", logged, re.MULTILINE)


def address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


# --- The normal client ---------------------------------------------------------------


@dataclass
class Meanwhile:
    """What the normal client saw while an attack ran."""

    seconds: list[float] = field(default_factory=list)  # per answered request
    failures: list[str] = field(default_factory=list)
    logged: str = field(default="", repr=False)  # the server's log meanwhile

    def report(self) -> str:
        if not self.seconds:
            return f"normal client: nothing answered, failures {self.failures}"
        return (
            f"normal client: {len(self.seconds)} answered, median {median(self.seconds):.3f} s,"
            f" slowest {max(self.seconds):.3f} s, failures {len(self.failures)}"
        )


async def while_attacking(
    server: LiveServer, attack: Callable[[asyncio.Event], Coroutine[Any, Any, T]]
) -> tuple[T, Meanwhile]:
    """Run *attack*; once it sets its event (in force), poll as a normal client until it ends.

    Each request goes on a new connection, so the server must go on accepting too.
    """
    log_start = server.log_path.stat().st_size
    underway = asyncio.Event()
    attacking = asyncio.create_task(attack(underway))
    waiting = asyncio.create_task(underway.wait())
    await asyncio.wait({attacking, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    meanwhile = Meanwhile()
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=server.url, timeout=ANSWERED_WITHIN, limits=limits
    ) as client:
        while True:
            last = attacking.done()
            started = time.monotonic()
            try:
                response = await client.get("/api/status")
            except httpx.HTTPError as error:
                meanwhile.failures.append(f"{type(error).__name__}: {error}")
            else:
                if response.status_code == 200:
                    meanwhile.seconds.append(time.monotonic() - started)
                else:
                    meanwhile.failures.append(f"{response.status_code}: {response.text[:200]}")
            if last:
                break
            await asyncio.sleep(POLL_INTERVAL)
    result = await attacking
    await asyncio.sleep(0.5)  # for the workers' last log lines
    meanwhile.logged = log_since(server, log_start)
    return result, meanwhile


def assert_served(meanwhile: Meanwhile, at_least: int = 1) -> None:
    print(meanwhile.report())
    assert not meanwhile.failures, meanwhile.report()
    assert len(meanwhile.seconds) >= at_least, meanwhile.report()


def assert_handled(meanwhile: Meanwhile) -> None:
    """hypercorn ended the attack's connections itself: no traceback in its log."""
    assert not unhandled_errors(meanwhile.logged), meanwhile.logged[-5000:]


# --- 1. An oversized request head ----------------------------------------------------


async def send_head(server: LiveServer, header_bytes: int) -> tuple[bytes, float]:
    """A GET whose one header is *header_bytes* long; the answer, and how long it took."""
    reader, writer = await asyncio.open_connection(*address(server))
    started = time.monotonic()
    head = (
        b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + b"X-Padding: "
        + b"a" * header_bytes
        + b"\r\n\r\n"
    )
    try:
        writer.write(head)
        with suppress(ConnectionError):  # refused before it was all sent: read the answer
            await writer.drain()
        received = b""
        async with asyncio.timeout(ANSWERED_WITHIN):
            while True:
                try:
                    chunk = await reader.read(65536)
                except ConnectionError:
                    break
                if not chunk:
                    break
                received += chunk
        return received, time.monotonic() - started
    finally:
        writer.close()


def status_of(received: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", received)
    return int(match[1]) if match else None


@pytest.mark.live
async def test_an_oversized_request_head_is_refused_with_431(served: LiveServer) -> None:
    limit = CONFIG.h11_max_incomplete_size
    received, _ = await send_head(served, limit // 2)
    assert status_of(received) == 200, received[:300]

    async def attack(underway: asyncio.Event) -> list[tuple[bytes, float]]:
        underway.set()
        answers = []
        for _ in range(10):  # 10 rounds of 20 connections, each with a 200 KB header
            answers += await asyncio.gather(*(send_head(served, 200 * 1024) for _ in range(20)))
        return answers

    answers, meanwhile = await while_attacking(served, attack)
    statuses = [status_of(received) for received, _ in answers]
    seconds = [took for _, took in answers]
    print(
        f"\n200 KB heads: statuses {sorted(set(map(str, statuses)))}, answered in median"
        f" {median(seconds):.3f} s, slowest {max(seconds):.3f} s (limit {limit} bytes)"
    )
    assert statuses == [431] * len(answers), {status: statuses.count(status) for status in statuses}
    assert_served(meanwhile)
    assert_handled(meanwhile)


# --- 2. Slowloris, 3. idle connections -----------------------------------------------


async def hold_open(server: LiveServer, opening: bytes, trickle: bytes | None) -> float | None:
    """Connect, send *opening*, then one byte of *trickle* a second (or nothing).

    How long the connection lived until the server closed it; None if it was still
    open after ``CUT_WITHIN``.
    """
    reader, writer = await asyncio.open_connection(*address(server))
    started = time.monotonic()
    try:
        writer.write(opening)
        position = 0
        async with asyncio.timeout(CUT_WITHIN):
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), 1.0)
                except TimeoutError:
                    if trickle is not None:
                        writer.write(trickle[position % len(trickle) :][:1])
                        position += 1
                        await writer.drain()
                    continue
                if not chunk:
                    return time.monotonic() - started
    except ConnectionError:
        return time.monotonic() - started
    except TimeoutError:
        return None
    finally:
        writer.close()


async def open_many(
    server: LiveServer, count: int, opening: bytes, trickle: bytes | None, underway: asyncio.Event
) -> list[float | None]:
    """*count* connections held open as ``hold_open`` does, opened in batches."""
    held: list[asyncio.Task[float | None]] = []
    for _ in range(0, count, 250):
        batch = [
            asyncio.create_task(hold_open(server, opening, trickle))
            for _ in range(min(250, count - len(held)))
        ]
        held += batch
        await asyncio.sleep(0.05)
    underway.set()
    return list(await asyncio.gather(*held))


def report_lifetimes(what: str, lifetimes: list[float | None]) -> None:
    closed = [lifetime for lifetime in lifetimes if lifetime is not None]
    print(
        f"\n{what}: {len(closed)} of {len(lifetimes)} closed by the server within"
        f" {CUT_WITHIN} s; lived median {median(closed or [0]):.2f} s,"
        f" longest {max(closed or [0]):.2f} s"
        f" (keep_alive_timeout {CONFIG.keep_alive_timeout} s)"
    )


@pytest.mark.live
async def test_slowloris_connections_are_cut(served: LiveServer) -> None:
    """300 connections trickle a request head, a byte a second: each is closed."""
    opening = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

    async def attack(underway: asyncio.Event) -> list[float | None]:
        return await open_many(served, 300, opening, b"abcdefgh", underway)

    lifetimes, meanwhile = await while_attacking(served, attack)
    report_lifetimes("slowloris (300)", lifetimes)
    assert None not in lifetimes, f"{lifetimes.count(None)} still open after {CUT_WITHIN} s"
    assert_served(meanwhile, at_least=5)
    assert_handled(meanwhile)


@pytest.mark.live
async def test_thousands_of_idle_connections_are_closed(served: LiveServer) -> None:
    """2,000 connections that never send a byte: each is closed."""

    async def attack(underway: asyncio.Event) -> list[float | None]:
        return await open_many(served, 2000, b"", None, underway)

    lifetimes, meanwhile = await while_attacking(served, attack)
    report_lifetimes("idle (2,000)", lifetimes)
    assert None not in lifetimes, f"{lifetimes.count(None)} still open after {CUT_WITHIN} s"
    assert_served(meanwhile, at_least=5)
    assert_handled(meanwhile)


# --- 4. HTTP/2 rapid reset, 5. CONTINUATION flood ------------------------------------


@dataclass
class H2Attack:
    """One HTTP/2 connection's attack, as the attacker saw it."""

    sent: int = 0  # streams (or frames) written; the kernel buffers many of them
    goaways: list[GoAwayFrame] = field(default_factory=list)
    ended: bool = False  # the server closed the connection (EOF or reset)
    seconds: float = 0.0
    # Set by the reader at each PING acknowledgement, and when the connection ends.
    heard: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def accepted(self) -> int | None:
        """Streams the server's GOAWAYs say it took (hypercorn may send many)."""
        if not self.goaways:
            return None
        return (max(goaway.last_stream_id for goaway in self.goaways) + 1) // 2

    def describe(self) -> str:
        goaway = "no GOAWAY"
        if self.goaways:
            codes = sorted({goaway.error_code for goaway in self.goaways})
            goaway = (
                f"{len(self.goaways)} GOAWAY frames, error codes {codes}, accepting"
                f" {self.accepted} streams"
            )
        end = "closed by the server" if self.ended else "NOT closed by the server"
        return f"{self.sent} written in {self.seconds:.2f} s; {goaway}; {end}"


async def read_frames(reader: asyncio.StreamReader, outcome: H2Attack) -> None:
    """Read the server's frames until it closes the connection; note its GOAWAYs."""
    buffer = b""
    try:
        while chunk := await reader.read(65536):
            buffer += chunk
            while len(buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(buffer[9 : 9 + length]))
                buffer = buffer[9 + length :]
                if isinstance(frame, GoAwayFrame):
                    outcome.goaways.append(frame)
                elif isinstance(frame, PingFrame) and "ACK" in frame.flags:
                    outcome.heard.set()
    except ConnectionError:
        pass
    outcome.ended = True
    outcome.heard.set()


async def h2_attack(
    server: LiveServer,
    frames: Callable[[int], bytes],
    budget: int,
    underway: asyncio.Event,
    pace: int | None = None,
) -> H2Attack:
    """h2c by prior knowledge, then ``frames(n)`` for n = 0, 1, ... up to *budget*.

    At full speed the kernel's buffers let the server read 64 KB at a time; with a
    *pace*, they go *pace* at a time, each batch with a PING whose acknowledgement is
    awaited, so the server has handled each batch before the next is sent. Like an attacker,
    it ignores GOAWAY: it stops writing when the server closes the connection or the
    budget is spent, and waits for the close up to ``CUT_WITHIN``.
    """
    reader, writer = await asyncio.open_connection(*address(server))
    outcome = H2Attack()
    reading = asyncio.create_task(read_frames(reader, outcome))
    started = time.monotonic()
    try:
        async with asyncio.timeout(CUT_WITHIN):
            try:
                writer.write(PREFACE + SettingsFrame(0).serialize())
                batch = b""
                while outcome.sent < budget and not outcome.ended:
                    batch += frames(outcome.sent)
                    outcome.sent += 1
                    if pace is None:
                        writer.write(batch)
                        batch = b""
                        if outcome.sent % 50 == 0:
                            underway.set()
                            await writer.drain()
                            await asyncio.sleep(0)
                    elif outcome.sent % pace == 0:
                        # One write, so one read: the answer to all of it (GOAWAY
                        # included) is in before the next batch can hit a closed socket.
                        outcome.heard.clear()
                        writer.write(batch + PingFrame(0, opaque_data=b"attacker").serialize())
                        batch = b""
                        underway.set()
                        await outcome.heard.wait()
                await writer.drain()
            except ConnectionError:
                pass  # the server has closed it: the reader sees that too
            await reading
    except TimeoutError:
        pass
    finally:
        outcome.seconds = time.monotonic() - started
        underway.set()
        writer.close()
        reading.cancel()
    return outcome


RESETS = 20_000  # streams the rapid-reset attacker opens and resets, at most
PACE = 50  # open-and-reset pairs per batch in the paced attack
# hypercorn reads at most this much at a time (hypercorn/asyncio/tcp_server.py), and
# h2 turns all of it into events before hypercorn looks at any of them.
MAX_RECV = 2**16


@dataclass
class RapidReset:
    attack: H2Attack
    reached_app: int  # distinct streams in the access log
    smallest_pair: int  # bytes of the smallest HEADERS + RST_STREAM written
    meanwhile: Meanwhile


async def rapid_reset(server: LiveServer, pace: int | None = None) -> RapidReset:
    """Open a stream and reset it at once, up to ``RESETS`` times on one connection.

    Each stream asks for a path of its own, so the access log (hypercorn logs every
    stream it hands to the app, with status ``-`` when the reset came first) tells
    how many streams reached the app.
    """
    encoder = Encoder()
    marker = f"/rapid-reset-{time.monotonic_ns()}/"
    sizes: list[int] = []

    def open_and_reset(n: int) -> bytes:
        stream_id = 2 * n + 1
        headers = [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "127.0.0.1"),
            (":path", f"{marker}{n}"),
        ]
        opened = HeadersFrame(
            stream_id, data=encoder.encode(headers), flags=["END_HEADERS", "END_STREAM"]
        )
        pair = opened.serialize() + RstStreamFrame(stream_id, error_code=CANCEL).serialize()
        sizes.append(len(pair))
        return pair

    async def attack(underway: asyncio.Event) -> H2Attack:
        return await h2_attack(server, open_and_reset, RESETS, underway, pace)

    log_start = server.log_path.stat().st_size
    outcome, meanwhile = await while_attacking(server, attack)
    pattern = re.compile(rf'request="GET {re.escape(marker)}(\d+) 2"')
    streams: set[str] = set()
    for _ in range(20):  # until the workers' access log stops growing
        latest = set(pattern.findall(log_since(server, log_start)))
        if streams and latest == streams:
            break
        streams = latest
        await asyncio.sleep(0.5)
    result = RapidReset(outcome, len(streams), min(sizes), meanwhile)
    unhandled = unhandled_errors(meanwhile.logged)
    print(
        f"\nrapid reset ({'full speed' if pace is None else f'paced, {pace} a batch'}):"
        f" {outcome.describe()}; {result.reached_app} streams reached the app;"
        f" keep_alive_max_requests {CONFIG.keep_alive_max_requests}; hypercorn logged"
        f" {unhandled or 'no unhandled exception'}"
    )
    return result


@pytest.mark.live
async def test_http2_rapid_reset_is_cut_after_keep_alive_max_requests(
    served: LiveServer,
) -> None:
    """CVE-2023-44487: streams opened and reset at once, on one connection.

    Reset streams do not count against MAX_CONCURRENT_STREAMS, so only
    ``keep_alive_max_requests`` (streams per connection) stops the attack: hypercorn
    refuses every stream past it and closes the connection (quart_app/upstream/
    hypercorn.py). The attack goes in batches, each handled before the next (PING), so
    no single read holds many streams; bare hypercorn let the rest of one batch through.
    """
    result = await rapid_reset(served, pace=PACE)
    assert result.attack.goaways, result.attack.describe()
    assert result.attack.ended, result.attack.describe()
    assert 0 < result.reached_app <= CONFIG.keep_alive_max_requests + PACE
    assert_served(result.meanwhile)
    assert_handled(result.meanwhile)


@pytest.mark.live
async def test_http2_rapid_reset_at_full_speed_is_cut(served: LiveServer) -> None:
    """As fast as the socket takes it: the server reads up to 64 KB of streams at once.

    The connection is closed, after at most one more read's worth of streams than the
    limit (what bare hypercorn 0.18 holds to; the next test holds it to the limit).
    """
    result = await rapid_reset(served)
    assert result.attack.ended, result.attack.describe()
    assert result.reached_app < RESETS, "every stream of the attack reached the app"
    one_more_read = MAX_RECV // result.smallest_pair + 1
    assert 0 < result.reached_app <= CONFIG.keep_alive_max_requests + 1 + one_more_read
    assert_served(result.meanwhile)


@pytest.mark.live
async def test_http2_rapid_reset_at_full_speed_stops_at_keep_alive_max_requests(
    served: LiveServer,
) -> None:
    """The requirement: at most ``keep_alive_max_requests`` streams reach the app.

    Bare hypercorn 0.18 let one more through (it tests with >), then every stream of
    the same read; past 999 of them the priority tree raised TooManyStreamsError.
    """
    result = await rapid_reset(served)
    assert_served(result.meanwhile)
    assert result.attack.ended, result.attack.describe()
    assert result.reached_app <= CONFIG.keep_alive_max_requests
    assert_handled(result.meanwhile)


@pytest.mark.live
async def test_a_normal_http2_client_past_keep_alive_max_requests_loses_nothing(
    served: LiveServer,
) -> None:
    """A client that reaches the limit with requests in flight, as a busy proxy would.

    RFC 9113 §6.8: streams up to the GOAWAY's last_stream_id may have been processed,
    so a client cannot retry them; each must be answered. (Bare hypercorn 0.18's GOAWAY
    closed h2's connection state: those answers failed silently.) The client is h2's,
    as httpx's is: any frame after a GOAWAY is an error to it, so the server's GOAWAY
    must come after the answers, and the streams past the limit are refused.
    """
    limit = CONFIG.keep_alive_max_requests
    assert limit <= 5000, "too many requests for this test to reach"
    reader, writer = await asyncio.open_connection(*address(served))
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    headers = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1")]
    headers.append((":path", "/api/status"))
    answered: set[int] = set()
    goaway: h2.events.ConnectionTerminated | None = None

    async def exchange(streams: list[int]) -> None:
        """Send what is pending; read until *streams* are answered or the server closes."""
        nonlocal goaway
        writer.write(connection.data_to_send())
        while not all(stream_id in answered for stream_id in streams):
            data = await asyncio.wait_for(reader.read(65536), ANSWERED_WITHIN)
            if not data:
                return
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    answered.add(event.stream_id)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    goaway = event
            writer.write(connection.data_to_send())

    try:
        for _ in range(limit - 5):  # one at a time, each answered
            stream_id = connection.get_next_available_stream_id()
            connection.send_headers(stream_id, headers, end_stream=True)
            await exchange([stream_id])
        burst = [connection.get_next_available_stream_id() + 2 * n for n in range(20)]
        for stream_id in burst:  # then 20 at once, across the limit
            connection.send_headers(stream_id, headers, end_stream=True)
        await exchange(burst)
    finally:
        writer.close()
    assert goaway is not None, "no GOAWAY past keep_alive_max_requests"
    last = goaway.last_stream_id or 0
    lost = [
        (stream_id + 1) // 2
        for stream_id in burst
        if stream_id <= last and stream_id not in answered
    ]
    print(
        f"\npast the limit: GOAWAY accepts {(last + 1) // 2} requests; requests"
        f" {lost} of those were never answered"
    )
    assert not lost


@pytest.mark.live
async def test_http2_continuation_flood_ends_the_connection(served: LiveServer) -> None:
    """A HEADERS frame without END_HEADERS, then 16 KB CONTINUATION frames without end."""
    encoder = Encoder()
    opening = HeadersFrame(
        1,
        data=encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/")]),
        flags=["END_STREAM"],
    ).serialize()
    continuation = ContinuationFrame(1, data=b"\x00" * 16384).serialize()

    def flood(n: int) -> bytes:
        return opening if n == 0 else continuation

    async def attack(underway: asyncio.Event) -> H2Attack:
        return await h2_attack(served, flood, 4096, underway)  # up to 64 MB

    outcome, meanwhile = await while_attacking(served, attack)
    print(f"\nCONTINUATION flood (frames): {outcome.describe()}")
    assert outcome.ended, outcome.describe()
    assert outcome.sent < 4096, f"the whole flood went in: {outcome.describe()}"
    assert_served(meanwhile)
    assert_handled(meanwhile)
