"""HTTP/2 from quart_app.serve, over TLS and over h2c: early answers keep the connection,
and many live streams share one connection.

An answer sent before the request body was read (401, the CSRF 403 and 415, 413) must
not break the connection for the requests after it (CONTRACT §8). hypercorn 0.18 drops
such a connection (pgjones/hypercorn#329); quart_app/upstream/hypercorn.py mends it.

Live updates (CONTRACT §10) are why a site wants HTTP/2: each open event stream holds
one of a browser's six HTTP/1.1 connections to it, while HTTP/2 carries a tab's streams
and requests, and other tabs', on one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h11._events
import h11._readers
import httpx
import pytest
import pytest_asyncio
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.protocol.h2 import H2Protocol

from quart_app.config import DEFAULTS
from quart_app.upstream import hypercorn as upstream_hypercorn
from tests.helpers.apps import make_app
from tests.helpers.live import ADMIN_LIVE_PASSWORD as ADMIN_PASSWORD
from tests.helpers.live import (
    LiveServer,
    free_port,
    hypercorn_process,
    issue_certificate,
    prepare_server_env,
    wait_until_listening,
    wait_until_serving,
)
from tests.helpers.services import reset_schema
from tests.helpers.sse import HttpStream
from tests.helpers.waiting import eventually

MAX_CONTENT_LENGTH = 64 * 1024  # the app's default QUART_MAX_CONTENT_LENGTH
# Early answers per case on one connection: whether the body's frames arrive after the
# answer (which is what broke the connection) is a race, so one try could pass by luck.
REPEATS = 5


def json_title(length: int) -> bytes:
    """A JSON body for a new thing whose title is *length* characters long."""
    return json.dumps({"title": "x" * length}).encode()


JSON = {"Content-Type": "application/json"}
COOKIE = {"Cookie": "quart_app_auth=x"}  # any auth cookie makes the CSRF rule apply
SAME_SITE_FORM = {"Content-Type": "text/plain", **COOKIE, "Sec-Fetch-Site": "same-origin"}
# A body within the limit is read before the refusal goes out (quart_app.errors); one
# over the limit is refused from its Content-Length alone, before the first byte.
SMALL, OVER_THE_LIMIT = 10, MAX_CONTENT_LENGTH


@dataclass(frozen=True)
class EarlyAnswer:
    """A request to create a thing that the app refuses from its headers, and the answer."""

    headers: dict[str, str]
    body: bytes
    status: int
    error: str
    bearer: bool = False  # sent with the admin's token


UNAUTHORIZED = "Unauthorized"
CROSS_SITE = "The request's origin could not be verified"
NOT_JSON = "Send the body as JSON with Content-Type: application/json"
EARLY_ANSWERS = {
    "401 no credentials": EarlyAnswer(JSON, json_title(SMALL), 401, UNAUTHORIZED),
    "401 no credentials, body over the limit": EarlyAnswer(
        JSON, json_title(OVER_THE_LIMIT), 401, UNAUTHORIZED
    ),
    "403 cookie without origin": EarlyAnswer(
        {**JSON, **COOKIE}, json_title(SMALL), 403, CROSS_SITE
    ),
    "403 cookie without origin, body over the limit": EarlyAnswer(
        {**JSON, **COOKIE}, json_title(OVER_THE_LIMIT), 403, CROSS_SITE
    ),
    "415 cookie and a text body": EarlyAnswer(SAME_SITE_FORM, b"title=x", 415, NOT_JSON),
    "415 cookie and a text body over the limit": EarlyAnswer(
        SAME_SITE_FORM, b"x" * (OVER_THE_LIMIT + 1), 415, NOT_JSON
    ),
    "413 body over the limit": EarlyAnswer(
        JSON, json_title(OVER_THE_LIMIT), 413, "Request Entity Too Large", bearer=True
    ),
}


# --- Live servers: quart_app.serve over h2c and over TLS --------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["h2c", "tls"])
async def h2_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    """One server per transport for the module: HTTP/2 is the same whatever the database."""
    workdir = tmp_path_factory.mktemp(request.param)
    env = await prepare_server_env(f"sqlite+aiosqlite:///{workdir / 'app.sqlite3'}", workdir)
    certificate = issue_certificate(workdir) if request.param == "tls" else None
    with hypercorn_process(env, workdir, "hypercorn", certificate) as live:
        await wait_until_serving(live)
        yield live


def h2_client(server: LiveServer) -> httpx.AsyncClient:
    """A client on a single connection, for HTTP/2.

    Over TLS it offers h2 and http/1.1 by ALPN as browsers do, and the server picks;
    over plain http it speaks HTTP/2 from the first byte (prior knowledge), as a
    proxy's h2c upstream connection does.
    """
    return httpx.AsyncClient(
        base_url=server.url,
        verify=server.verify,
        http1=server.url.startswith("https:"),
        http2=True,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        timeout=30,  # a stalled stream fails the test instead of hanging it
    )


def assert_one_http2_connection(responses: list[httpx.Response]) -> None:
    """Every response came over HTTP/2, on the one connection still open.

    A client numbers its streams 1, 3, 5, ... on each connection, so the n-th request
    on the first connection is stream 2n - 1; a reconnection would start again at 1.
    """
    assert {response.http_version for response in responses} == {"HTTP/2"}
    streams = [response.extensions["stream_id"] for response in responses]
    assert streams == list(range(1, 2 * len(responses), 2))
    addresses = {
        response.extensions["network_stream"].get_extra_info("client_addr")
        for response in responses
    }
    assert len(addresses) == 1


@contextmanager
def no_unhandled_exception(server: LiveServer) -> Iterator[None]:
    """hypercorn logs no traceback meanwhile (it logs one for each connection it drops)."""
    start = server.log_path.stat().st_size
    yield
    with server.log_path.open() as log:
        log.seek(start)
        written = log.read()
    assert "Traceback" not in written, written


async def sign_in(client: httpx.AsyncClient) -> tuple[httpx.Response, dict[str, str]]:
    """The admin's token request, and the ``Authorization`` header it yields."""
    credentials = {"username": "admin", "password": ADMIN_PASSWORD}
    issued = await client.post("/api/tokens", json=credentials)
    assert issued.status_code == 201, issued.text
    return issued, {"Authorization": f"Bearer {issued.json()['token']}"}


async def send(
    client: httpx.AsyncClient, case: EarlyAnswer, token: dict[str, str]
) -> httpx.Response:
    """POST *case*'s request to /api/things and check the refusal."""
    headers = {**case.headers, **(token if case.bearer else {})}
    refused = await client.post("/api/things", content=case.body, headers=headers)
    assert refused.status_code == case.status, refused.text
    assert refused.json() == {"error": case.error}
    return refused


@pytest.mark.live
@pytest.mark.parametrize("case", EARLY_ANSWERS.values(), ids=EARLY_ANSWERS.keys())
async def test_an_early_answer_leaves_the_http2_connection_usable(
    h2_server: LiveServer, case: EarlyAnswer
) -> None:
    with no_unhandled_exception(h2_server):
        async with h2_client(h2_server) as client:
            issued, token = await sign_in(client)
            responses = [issued]
            for _ in range(REPEATS):
                refused = await send(client, case, token)
                status = await client.get("/api/status")
                assert status.status_code == 200
                assert status.json() == {"success": True}
                responses += [refused, status]
            assert_one_http2_connection(responses)


@pytest.mark.live
async def test_early_answers_between_normal_requests_on_one_http2_connection(
    h2_server: LiveServer,
) -> None:
    with no_unhandled_exception(h2_server):
        async with h2_client(h2_server) as client:
            issued, token = await sign_in(client)
            responses = [issued]
            for case in EARLY_ANSWERS.values():
                refused = await send(client, case, token)
                me = await client.get("/api/me", headers=token)
                assert me.status_code == 200
                assert me.json()["user"]["username"] == "admin"
                responses += [refused, me]
            # Bodies still go through: the unread ones gave their window back.
            created = await client.post("/api/things", json={"title": "after"}, headers=token)
            assert created.status_code == 201, created.text
            fetched = await client.get(created.headers["location"], headers=token)
            assert fetched.json()["title"] == "after"
            responses += [created, fetched]
            assert_one_http2_connection(responses)


# --- Live updates: many event streams on one connection ---------------------------------

# Streams open at once on one connection: more than the six connections per origin a
# browser allows itself under HTTP/1.1, within the server's per-user cap of open streams.
STREAMS_ON_ONE_CONNECTION = 7
STREAM_CAP = int(DEFAULTS["EVENT_STREAMS_PER_USER"])
assert STREAMS_ON_ONE_CONNECTION <= STREAM_CAP


async def open_stream(
    client: httpx.AsyncClient, token: dict[str, str], stack: AsyncExitStack
) -> HttpStream | httpx.Response:
    """A stream of the things, open and started; or the refusal, read; *stack* closes it."""
    response = await stack.enter_async_context(
        client.stream("GET", "/api/things/events", headers=token)
    )
    if response.status_code != 200:
        await response.aread()
        return response
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = HttpStream(response)
    await stream.started()
    return stream


async def open_streams(
    client: httpx.AsyncClient, token: dict[str, str], count: int, stack: AsyncExitStack
) -> list[HttpStream]:
    """*count* streams, each open before the next is asked for."""
    streams = []
    for _ in range(count):
        stream = await open_stream(client, token, stack)
        if isinstance(stream, httpx.Response):
            raise AssertionError(f"stream refused: {stream.status_code} {stream.text}")
        streams.append(stream)
    return streams


@pytest.mark.live
async def test_many_event_streams_and_requests_share_one_http2_connection(
    h2_server: LiveServer,
) -> None:
    with no_unhandled_exception(h2_server):
        async with h2_client(h2_server) as client, AsyncExitStack() as stack:
            issued, token = await sign_in(client)
            streams = await open_streams(client, token, STREAMS_ON_ONE_CONNECTION, stack)
            # With every stream open, the connection still answers requests, and each
            # stream gets each change made meanwhile, as the REST answers show it.
            status = await client.get("/api/status")
            assert status.json() == {"success": True}
            created = await client.post("/api/things", json={"title": "live"}, headers=token)
            assert created.status_code == 201, created.text
            thing_id = created.json()["id"]
            updated = await client.patch(
                f"/api/things/{thing_id}", json={"done": True}, headers=token
            )
            assert updated.status_code == 200, updated.text
            deleted = await client.delete(f"/api/things/{thing_id}", headers=token)
            assert deleted.status_code == 204, deleted.text
            expected = [
                ("thing.created", created.json()),
                ("thing.updated", updated.json()),
                ("thing.deleted", {"id": thing_id}),
            ]

            async def changes(stream: HttpStream) -> list[tuple[str, object]]:
                events = [await stream.next_event() for _ in expected]
                return [(event.event, event.json) for event in events]

            received = await asyncio.gather(*(changes(stream) for stream in streams))
            assert received == [expected] * len(streams)
            stream_responses = [stream.response for stream in streams]
            assert_one_http2_connection(
                [issued, *stream_responses, status, created, updated, deleted]
            )


async def new_user(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> dict[str, str]:
    """A new user, made by the admin; the ``Authorization`` header of a sign-in of theirs."""
    credentials = {"username": name, "password": f"{name}-password"}
    created = await client.post("/api/admin/users", json=credentials, headers=admin)
    assert created.status_code == 201, created.text
    issued = await client.post("/api/tokens", json=credentials)
    assert issued.status_code == 201, issued.text
    return {"Authorization": f"Bearer {issued.json()['token']}"}


@pytest.mark.live
async def test_closing_an_http2_connection_ends_its_event_streams(
    h2_server: LiveServer,
) -> None:
    """Streams held on one connection count against the per-user cap until it closes."""
    with no_unhandled_exception(h2_server):
        async with h2_client(h2_server) as client, AsyncExitStack() as stack:
            _, admin = await sign_in(client)
            token = await new_user(client, admin, "streamer")
            await open_streams(client, token, STREAM_CAP, stack)
            refused = await open_stream(client, token, stack)
            assert isinstance(refused, httpx.Response)
            assert refused.status_code == 429, refused.text
            assert refused.headers["retry-after"].isdigit()
            assert refused.http_version == "HTTP/2"

        async def as_many_streams_again() -> bool:
            async with h2_client(h2_server) as client, AsyncExitStack() as stack:
                for _ in range(STREAM_CAP):
                    stream = await open_stream(client, token, stack)
                    if isinstance(stream, httpx.Response):
                        assert stream.status_code == 429, stream.text
                        return False
                return True

        await eventually(
            as_many_streams_again, within=10, every=0.2, what="the closed connection's streams"
        )


# --- The upstream bug, frame by frame, in hypercorn as installed ------------------------

# A small limit, so the oversized body fits the stream's first flow-control window and
# is sent in one go: the exchange then depends on nothing but the server.
SMALL_LIMIT = 1024


@pytest.fixture
async def in_process_port(tmp_path: Path) -> AsyncIterator[int]:
    """The app served by hypercorn in this process, as installed (no fix unless applied)."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite3'}"
    await reset_schema(database_url)
    config = Config()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    stop = asyncio.Event()
    app = make_app(database_url, MAX_CONTENT_LENGTH=SMALL_LIMIT)
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    await wait_until_listening(port)
    yield port
    stop.set()
    await server


@pytest.fixture
def fixed_hypercorn(monkeypatch: pytest.MonkeyPatch) -> None:
    """hypercorn with quart_app's fixes, as quart_app.serve's workers run it."""
    # Each is undone after the test.
    monkeypatch.setattr(H2Protocol, "__init__", upstream_hypercorn.H2_PROTOCOL_INIT)
    monkeypatch.setattr(
        h11._readers, "_obsolete_line_fold", upstream_hypercorn.H11_OBSOLETE_LINE_FOLD
    )
    monkeypatch.setattr(
        h11._events, "normalize_and_validate", upstream_hypercorn.H11_NORMALIZE_AND_VALIDATE
    )
    upstream_hypercorn.apply()


@dataclass
class RawH2:
    """An h2c client that sends each frame only when told to, and records the answers."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    h2: h2.connection.H2Connection = field(
        default_factory=lambda: h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True)
        )
    )
    statuses: dict[int, int] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)
    closed: bool = False

    async def flush(self) -> None:
        """Write what h2 has queued; a connection the server dropped counts as closed."""
        try:
            self.writer.write(self.h2.data_to_send())
            await self.writer.drain()
        except ConnectionError:
            self.closed = True

    async def answer(self, stream_id: int) -> int | None:
        """The status of *stream_id*'s complete answer; ``None`` if the connection ends first."""
        while stream_id not in self.ended and not self.closed:
            try:
                data = await self.reader.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                self.closed = True
                break
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    self.statuses[event.stream_id] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended.add(event.stream_id)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.closed = True
            await self.flush()
        return self.statuses[stream_id] if stream_id in self.ended else None


async def body_after_the_answer(port: int) -> tuple[int | None, int | None]:
    """Statuses of an early 401, then of GET /api/status, on one connection.

    The first request has no credentials and declares a body over the limit, so the
    app refuses it without waiting for the body. Only once that answer is complete does
    the body follow: the order a client on a slow link sees, made certain here.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = RawH2(reader, writer)
    client.h2.initiate_connection()
    body = json_title(SMALL_LIMIT)
    target = [(":scheme", "http"), (":authority", f"127.0.0.1:{port}")]
    client.h2.send_headers(
        1,
        [
            (":method", "POST"),
            (":path", "/api/things"),
            *target,
            *JSON.items(),
            ("content-length", str(len(body))),
        ],
    )
    await client.flush()
    refused = await client.answer(1)
    client.h2.send_data(1, body, end_stream=True)
    client.h2.send_headers(
        3, [(":method", "GET"), (":path", "/api/status"), *target], end_stream=True
    )
    await client.flush()
    after = await client.answer(3)
    writer.close()
    return refused, after


async def test_installed_hypercorn_still_drops_the_connection_without_the_fix(
    in_process_port: int,
) -> None:
    """pgjones/hypercorn#329 in the installed hypercorn.

    When this fails, hypercorn has fixed the bug: delete the fix in
    quart_app/upstream/hypercorn.py and require that hypercorn release in pyproject.toml.
    """
    refused, after = await body_after_the_answer(in_process_port)
    assert refused == 401
    assert after is None  # the connection died, and the request after the 401 with it


@pytest.mark.usefixtures("fixed_hypercorn")
async def test_with_the_fix_the_request_after_an_early_answer_is_served(
    in_process_port: int,
) -> None:
    assert await body_after_the_answer(in_process_port) == (401, 200)
