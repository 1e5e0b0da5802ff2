"""Live updates through real servers: across workers and instances, cut connections,
killed workers, SIGTERM and subscribers that stop reading."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from hypercorn.config import Config

from tests.helpers.live import (
    ADMIN_LIVE_PASSWORD,
    ROOT,
    LiveServer,
    hypercorn_process,
    prepare_server_env,
    token_for,
    wait_until_serving,
)
from tests.helpers.sse import HttpStream, http_stream
from tests.helpers.waiting import eventually
from tests.test_serve import alive, serving_workers, started_workers

pytestmark = pytest.mark.live

ADMIN = ("admin", ADMIN_LIVE_PASSWORD)
# Streams opened, each on a connection of its own: with one listening socket per
# worker, the kernel spreads them over both workers (all on one: 2 in 2**8).
STREAMS = 8


async def admin_token(base_url: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        return await token_for(client, *ADMIN)


async def write(base_url: str, headers: dict[str, str], title: str) -> dict[str, object]:
    """Create a thing on a connection of its own (so writes reach every worker)."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        created = await client.post("/api/things", json={"title": title}, headers=headers)
    assert created.status_code == 201, created.text
    thing: dict[str, object] = created.json()
    return thing


async def assert_every_stream_gets(
    streams: list[HttpStream], base_urls: list[str], headers: dict[str, str], count: int
) -> None:
    """*count* writes, spread over *base_urls*, reach every stream in order."""
    things = [
        await write(base_urls[n % len(base_urls)], headers, f"thing {n}") for n in range(count)
    ]
    for stream in streams:
        events = await stream.events(count)
        assert [(e.event, e.json) for e in events] == [("thing.created", t) for t in things]


@pytest.fixture
async def two_workers(server_env: dict[str, str], tmp_path: Path) -> AsyncIterator[LiveServer]:
    with hypercorn_process(server_env, tmp_path, "hypercorn", workers=2) as server:
        await wait_until_serving(server)
        await eventually(lambda: len(serving_workers(server)) == 2, within=30, what="2 workers")
        yield server


async def test_changes_through_any_worker_reach_every_stream(two_workers: LiveServer) -> None:
    """PostgreSQL: LISTEN/NOTIFY; SQLite (make run's setup): each worker polls the log."""
    headers = await admin_token(two_workers.url)
    async with AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(http_stream(two_workers.url, headers))
            for _ in range(STREAMS)
        ]
        for stream in streams:
            assert stream.response.status_code == 200
        await assert_every_stream_gets(streams, [two_workers.url], headers, 6)


@pytest.fixture
async def sqlite_instances_with_redis(
    redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[str, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    # A slow poll: what arrives in time came through Redis.
    env = await prepare_server_env(
        url, tmp_path, QUART_EVENT_REDIS_URL=redis_url, QUART_EVENT_POLL_INTERVAL="30"
    )
    with (
        hypercorn_process(env, tmp_path, "instance-a", workers=2) as a,
        hypercorn_process(env, tmp_path, "instance-b", workers=2) as b,
    ):
        await asyncio.gather(wait_until_serving(a), wait_until_serving(b))
        yield a.url, b.url


@pytest.fixture
async def postgres_instances(postgres_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    env = await prepare_server_env(postgres_url, tmp_path, QUART_EVENT_POLL_INTERVAL="30")
    with (
        hypercorn_process(env, tmp_path, "instance-a", workers=2) as a,
        hypercorn_process(env, tmp_path, "instance-b", workers=2) as b,
    ):
        await asyncio.gather(wait_until_serving(a), wait_until_serving(b))
        yield a.url, b.url


async def test_changes_through_any_instance_reach_every_stream_over_postgres(
    postgres_instances: tuple[str, str],
) -> None:
    await assert_instances_share_streams(*postgres_instances)


async def test_changes_through_any_instance_reach_every_stream_over_redis(
    sqlite_instances_with_redis: tuple[str, str],
) -> None:
    await assert_instances_share_streams(*sqlite_instances_with_redis)


async def assert_instances_share_streams(a_url: str, b_url: str) -> None:
    headers = await admin_token(a_url)
    async with AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(http_stream((a_url, b_url)[n % 2], headers))
            for n in range(4)
        ]
        # Within the 30 s poll: the engine carried them. 5 s each at most.
        await assert_every_stream_gets(streams, [a_url, b_url], headers, 4)


async def test_a_logout_on_one_instance_ends_the_stream_on_the_other_over_postgres(
    postgres_instances: tuple[str, str],
) -> None:
    await assert_revocation_reaches_the_other_instance(*postgres_instances)


async def test_a_logout_on_one_instance_ends_the_stream_on_the_other_over_redis(
    sqlite_instances_with_redis: tuple[str, str],
) -> None:
    await assert_revocation_reaches_the_other_instance(*sqlite_instances_with_redis)


async def assert_revocation_reaches_the_other_instance(a_url: str, b_url: str) -> None:
    headers = await admin_token(a_url)
    async with http_stream(b_url, headers) as stream:
        assert stream.response.status_code == 200
        async with httpx.AsyncClient(base_url=a_url) as a:
            assert (await a.delete("/api/tokens/current", headers=headers)).status_code == 204
        end = await stream.next_event(within=5)
        assert (end.event, end.json) == ("end", {"reason": "revoked"})
        with pytest.raises(EOFError):
            await stream.next_event(within=5)
    async with httpx.AsyncClient(base_url=b_url) as b:
        assert (await b.get("/api/things/events", headers=headers)).status_code == 401


async def test_nothing_is_lost_across_a_cut_connection_or_a_killed_worker(
    server: LiveServer,
) -> None:
    """One worker: killed, the supervisor replaces it; the client resumes from its id."""
    base_url = server.url
    await wait_until_serving(server)
    headers = await admin_token(base_url)
    async with http_stream(base_url, headers) as stream:
        first = await write(base_url, headers, "before the cut")
        seen = await stream.next_event()
        assert seen.json == first
    # The connection is cut; two changes happen meanwhile.
    missed = [await write(base_url, headers, f"while cut {n}") for n in range(2)]
    resume = {**headers, "Last-Event-ID": str(seen.id)}
    async with http_stream(base_url, resume) as stream:
        replayed = await stream.events(2)
        assert [e.json for e in replayed] == missed
        last_seen = replayed[-1].id
        victim = started_workers(server)[-1]
        os.kill(victim, signal.SIGKILL)
        with pytest.raises((EOFError, httpx.TransportError)):
            await stream.next_event(within=10)
    await eventually(lambda: not alive(victim), within=10, what="the worker gone")
    await wait_until_serving(server)
    after_kill = [await write(base_url, headers, f"after the kill {n}") for n in range(2)]
    resume = {**headers, "Last-Event-ID": str(last_seen)}
    async with http_stream(base_url, resume) as stream:
        replayed = await stream.events(2)
    assert [e.json for e in replayed] == after_kill


@pytest.mark.server_env(QUART_EVENT_STREAM_KEEPALIVE="60")
async def test_sigterm_ends_streams_at_once_and_the_server_stops_well_within_the_grace(
    server: LiveServer,
) -> None:
    """hypercorn.toml's graceful_timeout is 10 s: without the drain, a stream would
    hold the worker (and the supervisor) that long."""
    await wait_until_serving(server)
    headers = await admin_token(server.url)
    async with http_stream(server.url, headers) as stream:
        await write(server.url, headers, "one")
        await stream.next_event()
        server.process.send_signal(signal.SIGTERM)
        end = await stream.next_event(within=3)
        assert (end.event, end.json) == ("end", {"reason": "shutdown"})
        with pytest.raises(EOFError):
            await stream.next_event(within=3)
    await eventually(lambda: server.process.poll() is not None, within=5, what="server exited")
    assert server.process.returncode == 0


def test_hypercorn_toml_sets_no_read_timeout() -> None:
    """hypercorn's read_timeout bounds every wait for the client's next bytes, and an
    HTTP/1.1 stream's client sends none: it cut every idle stream (make bench)."""
    assert Config.from_toml(ROOT / "hypercorn.toml").read_timeout is None


@pytest.mark.server_env(QUART_EVENT_STREAM_KEEPALIVE="1")
async def test_an_idle_stream_outlives_the_servers_idle_timeouts(server: LiveServer) -> None:
    """Past keep_alive_timeout (5 s), with keep-alive comments only, the stream still
    delivers."""
    await wait_until_serving(server)
    headers = await admin_token(server.url)
    idle = int(Config.from_toml(ROOT / "hypercorn.toml").keep_alive_timeout) + 2
    async with http_stream(server.url, headers) as stream:
        # One a second, so idle seconds pass without an event.
        assert await stream.comments(idle) == []
        thing = await write(server.url, headers, "after the quiet")
        assert (await stream.next_event()).json == thing


class StalledStream:
    """A stream whose client reads its opening frame, then nothing: its small receive
    buffer fills, then the server's send buffers behind it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str, headers: dict[str, str]) -> StalledStream:
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connecting
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        # A small limit: the reader stops taking bytes off the socket at 2 KiB.
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        writer.write(
            f"GET /api/things/events HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {headers['Authorization']}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 "), head
        await asyncio.wait_for(reader.readuntil(b"\n\n"), 10)  # retry: and id:
        return cls(reader, writer)

    async def rest(self) -> bytes:
        """Everything still to come, up to the server's close."""
        try:
            return await asyncio.wait_for(self.reader.read(), 30)
        finally:
            self.writer.close()


async def stream_refused(base_url: str, headers: dict[str, str]) -> bool:
    """Whether a new stream of the user is refused for the cap (429)."""
    async with (
        httpx.AsyncClient(base_url=base_url) as client,
        client.stream("GET", "/api/things/events", headers=headers) as response,
    ):
        return response.status_code == 429


# A title the stream sends as 1,200 bytes of JSON (each snowman escaped to 6).
BULKY_TITLE = "\N{SNOWMAN}" * 195
# Far more than the buffers between a stalled client and its stream hold: Linux lets
# the server's socket buffer grow to tcp_wmem's largest (4 MiB: about 2.3 MB were taken
# here before a write blocked), then hypercorn's (64 KiB), then EVENT_STREAM_BUFFER.
WRITES_BOUND = 4_000


@pytest.mark.server_env(QUART_EVENT_STREAM_BUFFER="4", QUART_EVENT_STREAMS_PER_USER="2")
async def test_a_subscriber_that_stops_reading_is_dropped_and_slows_no_one(
    base_url: str,
) -> None:
    """Real sockets: the stalled client's kernel buffers fill, then hypercorn's, then the
    stream's own EVENT_STREAM_BUFFER, and the server drops it; another stream of the
    same user gets every event as it is written, before and after."""
    headers = await admin_token(base_url)
    stalled = await StalledStream.open(base_url, headers)
    written: list[dict[str, object]] = []
    async with (
        http_stream(base_url, headers) as healthy,
        httpx.AsyncClient(base_url=base_url) as writer,
    ):
        assert await stream_refused(base_url, headers)  # both streams count
        while await stream_refused(base_url, headers):
            assert len(written) < WRITES_BOUND, "the stalled stream was never dropped"
            for _ in range(50):
                created = await writer.post(
                    "/api/things",
                    json={"title": f"{len(written):04d} {BULKY_TITLE}"},
                    headers=headers,
                )
                assert created.status_code == 201, created.text
                written.append(created.json())
                assert (await healthy.next_event(within=5)).json == written[-1]
        dropped_after = len(written)
        # Dropped, and nothing more is kept for it: later events never reach it.
        for n in range(20):
            created = await writer.post(
                "/api/things", json={"title": f"after {n}"}, headers=headers
            )
            written.append(created.json())
            assert (await healthy.next_event(within=5)).json == written[-1]
    received = await stalled.rest()
    ids = [int(line[len(b"id: ") :]) for line in received.splitlines() if line.startswith(b"id: ")]
    # What it got is where it stopped reading, in order, and ends before the drop.
    assert ids == sorted(ids)
    assert 0 < len(ids) < dropped_after
