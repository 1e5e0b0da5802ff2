"""What quart_app.upstream relies on in each library, checked against the installed release.

Each test here fails once upstream changes or fixes the internal the registry relies on
(docs/architecture.md, "Reaching into libraries", has a row for each, naming its test).
A failure says what to re-check; a test that fails because upstream fixed a bug means
the workaround can go. The HTTP/2 fix, quart-schema's conversion and hypercorn's
supervisor have their own modules: tests/test_http2.py, tests/test_quart_schema_fixes.py
and tests/test_serve.py.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import inspect
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import h11
import h11._events
import h11._headers
import h11._readers
import pytest
import quart
import quart_schema.conversion
from hpack import Encoder
from hypercorn.asyncio import serve
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.utils import load_application
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)
from quart import Blueprint, Quart, Response, g
from quart.globals import request_ctx
from quart_auth import AuthUser, QuartAuth, login_user, logout_user, renew_login
from quart_rate_limiter import RateLimiter, RateLimitExceeded, rate_limit
from quart_rate_limiter.redis_store import RedisStore
from quart_rate_limiter.store import MemoryStore
from quart_schema import QuartSchema
from redis.asyncio import Redis

from quart_app.upstream import hypercorn as upstream_hypercorn
from quart_app.upstream.aiosqlite import join_worker_thread
from quart_app.upstream.quart import App, CachedBlueprintsRequest
from quart_app.upstream.quart_auth import user_untouched, verify_token
from quart_app.upstream.rate_limiter import (
    add_limit_headers,
    check_limits,
    close_redis_client,
    redis_client,
    serving_hooks,
)
from tests.helpers.live import free_port, wait_until_listening
from tests.helpers.services import REDIS_URL
from tests.helpers.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "quart_app"


def parameters(function: Any) -> list[str]:
    """The names of *function*'s parameters, in order."""
    return list(inspect.signature(function).parameters)


# --- Quart: ensure_async and Request.blueprints, cached (upstream/quart.py) -------------


def test_quart_ensure_async_is_still_a_method_of_the_function() -> None:
    """``App`` overrides it; renamed, made a property or given more parameters, the
    override no longer replaces what Quart calls."""
    assert inspect.isfunction(inspect.getattr_static(Quart, "ensure_async"))
    assert parameters(Quart.ensure_async) == ["self", "func"]


async def test_the_cached_ensure_async_answers_as_quarts_own() -> None:
    """The cache returns what Quart's ``ensure_async`` computes, once per function."""
    app = App(__name__)

    async def coroutine_function() -> str:
        return "async"

    def plain_function() -> str:
        return "sync"

    # A coroutine function is its own answer, upstream and cached.
    assert Quart.ensure_async(app, coroutine_function) is coroutine_function
    assert app.ensure_async(coroutine_function) is coroutine_function
    # A plain function is wrapped to run in a thread: the same result either way, and
    # the cache hands out one wrapper.
    upstream, cached = Quart.ensure_async(app, plain_function), app.ensure_async(plain_function)
    assert inspect.iscoroutinefunction(upstream)
    assert inspect.iscoroutinefunction(cached)
    assert await upstream() == await cached() == "sync"
    assert app.ensure_async(plain_function) is cached


def test_quart_request_blueprints_is_still_a_property() -> None:
    """``CachedBlueprintsRequest`` overrides the property and keeps it in ``_blueprints``."""
    assert isinstance(inspect.getattr_static(quart.Request, "blueprints"), property)
    assert not hasattr(quart.Request, "_blueprints")


async def test_the_cached_blueprints_are_quarts_own() -> None:
    """Quart matches the request before anything reads the list, so the cache is right.

    Were the list read (and cached) before matching, it would be empty: the nested
    blueprints' hooks would not run, and the view would see ``[]``.
    """
    app = App(__name__)
    app.request_class = CachedBlueprintsRequest
    outer, inner = Blueprint("outer", __name__), Blueprint("inner", __name__)
    ran: list[str] = []
    seen: list[tuple[list[str], list[str]]] = []

    @inner.get("/nested")
    async def nested() -> str:
        current = request_ctx.request
        upstream = inspect.getattr_static(quart.Request, "blueprints").fget(current)
        seen.append((current.blueprints, upstream))
        return "ok"

    for blueprint in (outer, inner):

        @blueprint.before_request
        async def before(name: str = blueprint.name) -> None:
            ran.append(f"before {name}")

        @blueprint.teardown_request
        async def teardown(error: BaseException | None, name: str = blueprint.name) -> None:
            ran.append(f"teardown {name}")

    outer.register_blueprint(inner, url_prefix="/inner")
    app.register_blueprint(outer, url_prefix="/outer")

    response = await app.test_client().get("/outer/inner/nested")
    assert response.status_code == 200
    assert seen == [(["outer.inner", "outer"], ["outer.inner", "outer"])]
    assert sorted(ran) == ["before inner", "before outer", "teardown inner", "teardown outer"]


# --- quart-auth: the copied token check; the user on g (upstream/quart_auth.py) ---------

# sha256 of inspect.getsource(QuartAuth.load_token) in quart-auth 0.12.0.
LOAD_TOKEN_SOURCE_SHA256 = "133871493fe5b2a91c25f8aa586bee899ee6137b8534ccab99dacd814c53fd19"


def test_quart_auth_load_token_is_the_one_copied() -> None:
    source = inspect.getsource(QuartAuth.load_token)
    assert hashlib.sha256(source.encode()).hexdigest() == LOAD_TOKEN_SOURCE_SHA256, (
        "quart-auth's QuartAuth.load_token changed. quart_app.upstream.quart_auth."
        "verify_token is a copy of it: make it check tokens as the new one does (keys and "
        "their order, serializer_class, salt, duration, the exceptions caught), then put "
        "the new source's sha256 here. The new source:\n" + source
    )


def _auth_app(secret: str, salt: str | None = None, **config: Any) -> tuple[Quart, QuartAuth]:
    app = Quart(__name__)
    app.secret_key = secret
    app.config.update(config)
    return app, QuartAuth(app, duration=60, salt=salt)


NOW_SIGNED = "now"


def _token(case: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Quart, QuartAuth]:
    """A token of each kind, with the app and extension that judge it."""
    app, auth = _auth_app("the-current-key", SECRET_KEY_FALLBACKS=["an-old-key"])
    signed_ago = {
        "signed in the past, within duration": 30,
        "expired": 120,
        "signed in the future": -120,
    }
    if case in signed_ago:
        moment = time.time() - signed_ago[case]
        with monkeypatch.context() as patched:
            patched.setattr(time, "time", lambda: moment)
            return auth.dump_token("session-id", app), app, auth
    if case == "another key":
        other_app, other = _auth_app("another-key")
        return other.dump_token("session-id", other_app), app, auth
    if case == "a fallback key":
        old_app, old = _auth_app("an-old-key")
        return old.dump_token("session-id", old_app), app, auth
    if case == "another salt":
        other_app, other = _auth_app("the-current-key", salt="another-salt")
        return other.dump_token("session-id", other_app), app, auth
    token = auth.dump_token("session-id", app)
    if case == "forged signature":
        return token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), app, auth
    if case == "forged payload":
        return "x" + token, app, auth
    if case == "empty":
        return "", app, auth
    assert case == NOW_SIGNED
    return token, app, auth


@pytest.mark.parametrize(
    "case",
    [
        NOW_SIGNED,
        "signed in the past, within duration",
        "expired",
        "signed in the future",
        "another key",
        "a fallback key",
        "another salt",
        "forged signature",
        "forged payload",
        "empty",
    ],
)
def test_verify_token_answers_as_quart_auths_load_token(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy accepts and refuses what quart-auth's own check does."""
    token, app, auth = _token(case, monkeypatch)
    expected = QuartAuth.load_token(auth, token, app)
    verified = verify_token(auth, token, app)
    assert (verified[0] if verified else None) == expected
    if case in (NOW_SIGNED, "a fallback key"):
        assert expected == "session-id"
        assert verified is not None
        assert abs(verified[1] - time.time()) < 5


async def test_quart_auth_changes_the_cookie_only_for_a_user_on_g() -> None:
    """``AppAuth.after_request`` skips quart-auth's while no user is on ``g``.

    That holds while quart-auth writes or clears a cookie only for a user whose action
    is not ``PASS``, and every way of setting one leaves the user on ``g`` under
    ``attribute_name``.
    """
    app, auth = _auth_app("the-current-key", QUART_AUTH_COOKIE_SECURE=False)
    async with app.test_request_context("/"):
        assert user_untouched(auth)
        response = await auth.after_request(Response("x"))
        assert "Set-Cookie" not in response.headers
        assert getattr(g, auth.attribute_name).action.name == "PASS"
    touches: list[Callable[[], None]] = [
        lambda: login_user(AuthUser("session-id")),
        logout_user,
        renew_login,
    ]
    for touch in touches:
        async with app.test_request_context("/"):
            assert user_untouched(auth)
            touch()
            assert not user_untouched(auth)
            response = await auth.after_request(Response("x"))
            assert "Set-Cookie" in response.headers


# --- quart-rate-limiter: private hooks, RedisStore._redis (upstream/rate_limiter.py) ----


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("_before_request", ["self"]),
        ("_after_request", ["self", "response"]),
        ("_before_serving", ["self"]),
        ("_after_serving", ["self"]),
    ],
)
def test_rate_limiter_private_hooks_keep_their_signatures(name: str, expected: list[str]) -> None:
    hook = getattr(RateLimiter, name, None)
    assert hook is not None, f"RateLimiter.{name} is gone: re-check quart_app.upstream.rate_limiter"
    assert inspect.iscoroutinefunction(hook)
    assert parameters(hook) == expected


async def test_rate_limiter_private_hooks_still_limit_and_add_headers() -> None:
    """What the wrappers rely on: a spent limit raises, the headers are added, the
    serving hooks open and close the store."""
    app = Quart(__name__)
    events: list[str] = []

    class Store(MemoryStore):
        async def before_serving(self) -> None:
            events.append("opened")

        async def after_serving(self) -> None:
            events.append("closed")

    async def one_client() -> str:
        return "client"

    # Not bound to the app: no hooks registered.
    limiter = RateLimiter(store=Store(), key_function=one_client)
    app.config["QUART_RATE_LIMITER_ENABLED"] = True

    @app.get("/limited")
    @rate_limit(1, timedelta(minutes=1))
    async def limited() -> str:
        return "ok"

    open_store, close_store = serving_hooks(limiter)
    await open_store()
    async with app.test_request_context("/limited"):
        await check_limits(limiter)
        response = await add_limit_headers(limiter, Response("ok"))
        assert response.headers["RateLimit-Limit"] == "1"
        with pytest.raises(RateLimitExceeded):
            await check_limits(limiter)
    await close_store()
    assert events == ["opened", "closed"]


class _RedisSpy:
    """Stands in for a store's Redis client and records what the store asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def set(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("set", args, kwargs))

    async def close(self) -> None:
        self.calls.append(("close", (), {}))

    async def aclose(self) -> None:
        self.calls.append(("aclose", (), {}))


async def test_redis_store_keeps_its_client_in_redis_attribute() -> None:
    """``redis_client`` and ``close_redis_client`` read and clear ``RedisStore._redis``."""
    store = RedisStore(REDIS_URL)
    assert store._redis is None
    await store.before_serving()  # builds the client; connects on first use
    assert isinstance(redis_client(store), Redis)
    assert redis_client(store) is store._redis
    await close_redis_client(store)
    assert store._redis is None


async def test_redis_store_still_keeps_keys_forever_and_closes_with_close() -> None:
    """Why ``ExpiringRedisStore`` overrides ``set`` and ``after_serving``.

    Fails once quart-rate-limiter's store expires its keys or closes with ``aclose``:
    then drop the override that is no longer needed.
    """
    store = RedisStore(REDIS_URL)
    spy = _RedisSpy()
    store._redis = spy  # type: ignore[assignment]
    await store.set("key", datetime.now(UTC) + timedelta(seconds=10))
    await store.after_serving()
    assert [(name, kwargs) for name, _, kwargs in spy.calls] == [("set", {}), ("close", {})]


# --- aiosqlite: the worker thread (upstream/aiosqlite.py) -------------------------------


async def test_aiosqlite_worker_thread_is_still_a_thread_to_join(tmp_path: Path) -> None:
    """After a failed connect, ``join_worker_thread`` waits for the thread to stop."""
    connection = aiosqlite.connect(tmp_path / "missing-directory" / "db.sqlite3")
    assert isinstance(connection._thread, threading.Thread)
    with pytest.raises(sqlite3.OperationalError):
        await connection
    await asyncio.to_thread(join_worker_thread, connection)
    assert not connection._thread.is_alive()


def test_aiosqlite_still_has_no_public_join() -> None:
    """Fails once aiosqlite can wait for its thread (omnilib/aiosqlite#387).

    Then use that in ``data.sqlite.SQLitePool._open``, delete quart_app/upstream/aiosqlite.py and
    require that aiosqlite release in pyproject.toml.
    """
    assert not hasattr(aiosqlite.Connection, "join")
    assert "join" not in inspect.signature(aiosqlite.Connection.stop).parameters


# --- hypercorn and h11 (upstream/hypercorn.py) ------------------------------------------


@pytest.fixture
def bare_h11(monkeypatch: pytest.MonkeyPatch) -> None:
    """h11 as installed, even if an earlier test applied the fixes (undone afterwards)."""
    monkeypatch.setattr(
        h11._readers, "_obsolete_line_fold", upstream_hypercorn.H11_OBSOLETE_LINE_FOLD
    )
    monkeypatch.setattr(
        h11._events, "normalize_and_validate", upstream_hypercorn.H11_NORMALIZE_AND_VALIDATE
    )


@pytest.fixture
def fixed_h11(bare_h11: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """h11 with quart_app's fixes, as quart_app.serve's workers run it."""
    monkeypatch.setattr(H2Protocol, "__init__", upstream_hypercorn.H2_PROTOCOL_INIT)
    upstream_hypercorn.apply()


REQUEST = b"POST / HTTP/1.1\r\nHost: a\r\n"
OBS_FOLD = REQUEST + b"X-Note: a\r\n b\r\nContent-Length: 0\r\n\r\n"
CHUNKED_NOT_LAST = REQUEST + b"Transfer-Encoding: chunked, gzip\r\n\r\n"


def h11_reads(data: bytes) -> Any:
    """The first event h11, as a server, reads from *data*."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(data)
    return connection.next_event()


def h11_refusal(data: bytes) -> int:
    """The status h11 suggests for refusing *data*."""
    with pytest.raises(h11.RemoteProtocolError) as refused:
        h11_reads(data)
    return refused.value.error_status_hint


def test_h11_private_names_still_exist() -> None:
    """The names the fixes replace, with the signatures the replacements have."""
    assert parameters(h11._readers._obsolete_line_fold) == ["lines"]
    # h11._events imports it from h11._headers; Request and Response call it by that name.
    assert hasattr(h11._events, "normalize_and_validate")
    assert upstream_hypercorn.H11_NORMALIZE_AND_VALIDATE is h11._headers.normalize_and_validate
    assert parameters(upstream_hypercorn.H11_NORMALIZE_AND_VALIDATE) == ["headers", "_parsed"]
    assert "normalize_and_validate(" in inspect.getsource(h11._events.Request.__init__)


@pytest.mark.usefixtures("bare_h11")
def test_h11_still_unfolds_obsolete_line_folding() -> None:
    """Fails once h11 refuses obs-fold itself: then drop ``_refuse_line_folding``."""
    event = h11_reads(OBS_FOLD)
    assert isinstance(event, h11.Request)
    assert (b"x-note", b"a b") in list(event.headers)


@pytest.mark.usefixtures("bare_h11")
def test_h11_still_answers_501_when_chunked_is_not_the_final_coding() -> None:
    """Fails once h11 answers 400 itself: then drop ``_validate_headers_strictly``."""
    assert h11_refusal(CHUNKED_NOT_LAST) == 501


@pytest.mark.parametrize(
    "data",
    [
        REQUEST + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        REQUEST + b"Content-Type: a/b\r\nContent-Type: c/d\r\nContent-Length: 0\r\n\r\n",
        b"CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\n",
    ],
    ids=["Content-Length with Transfer-Encoding", "two Content-Types", "CONNECT"],
)
@pytest.mark.usefixtures("bare_h11")
def test_h11_still_takes_what_request_framing_refuses(data: bytes) -> None:
    """Fails once h11 refuses one of these itself (pgjones/hypercorn#279, #280, #277):
    then its rule in ``request_framing.framing_problem`` can go."""
    assert isinstance(h11_reads(data), h11.Request)


@pytest.mark.usefixtures("fixed_h11")
def test_with_the_fixes_h11_refuses_both_with_400() -> None:
    assert h11_refusal(OBS_FOLD) == 400
    assert h11_refusal(CHUNKED_NOT_LAST) == 400
    assert h11_refusal(REQUEST + b"Transfer-Encoding: gzip, chunked\r\n\r\n") == 400
    assert h11_refusal(REQUEST + b"Transfer-Encoding: xchunked\r\n\r\n") == 400
    assert isinstance(h11_reads(REQUEST + b"Transfer-Encoding: chunked\r\n\r\n"), h11.Request)


def test_hypercorn_h2_streams_are_still_looked_up_by_id_then_acknowledged() -> None:
    """The HTTP/2 fix replaces ``H2Protocol.streams``, set in ``__init__``, and relies on
    body data being handed to ``streams[id]`` before it is acknowledged.

    tests/test_http2.py has the test that fails once hypercorn fixes the bug.
    """
    assert "self.streams" in inspect.getsource(upstream_hypercorn.H2_PROTOCOL_INIT)
    source = inspect.getsource(H2Protocol._handle_events)
    data = source.index("h2.events.DataReceived")
    handled = source.index("self.streams[event.stream_id].handle(", data)
    assert handled < source.index("acknowledge_received_data", handled)


# HTTP/2's keep_alive_max_requests (_KeepAliveLimitedH2), on hypercorn in this process.

LIMIT = 5  # keep_alive_max_requests for these tests
CONCURRENT = 10  # h2_max_concurrent_streams: refusals a client gets before it is cut
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REFUSED_STREAM, ENHANCE_YOUR_CALM = 0x7, 0xB


@pytest.fixture
def bare_h2(monkeypatch: pytest.MonkeyPatch) -> None:
    """hypercorn's HTTP/2 as installed, even if an earlier test applied the fixes."""
    monkeypatch.setattr(H2Protocol, "__init__", upstream_hypercorn.H2_PROTOCOL_INIT)


@pytest.fixture
def fixed_h2(bare_h11: None, bare_h2: None) -> None:
    """hypercorn with quart_app's fixes, as quart_app.serve's workers run it."""
    upstream_hypercorn.apply()


@dataclass
class HeldApp:
    """An ASGI app that notes each request's path and answers once ``release`` is set."""

    paths: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.paths.append(scope["path"])
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def held() -> AsyncIterator[tuple[HeldApp, int]]:
    """The app and the port hypercorn serves it on, with ``keep_alive_max_requests`` 5."""
    config = Config()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.keep_alive_max_requests = LIMIT
    config.h2_max_concurrent_streams = CONCURRENT
    config.keep_alive_timeout = 30  # longer than any test waits: a close is the server's
    config.graceful_timeout = 1
    app = HeldApp()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    await wait_until_listening(port)
    yield app, port
    app.release.set()
    stop.set()
    await server


@dataclass
class H2Client:
    """h2c by prior knowledge, frame by frame, ignoring what the server asks (as an
    attacker would); it notes the answers, refusals and GOAWAYs."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    encoder: Encoder = field(default_factory=Encoder)
    next_stream: int = 1
    answered: set[int] = field(default_factory=set)
    refused: set[int] = field(default_factory=set)
    goaways: list[GoAwayFrame] = field(default_factory=list)
    closed: bool = False
    buffer: bytes = b""

    @classmethod
    async def connect(cls, port: int) -> H2Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(PREFACE + SettingsFrame(0).serialize())
        return cls(reader, writer)

    async def open(self, count: int) -> list[int]:
        """Open *count* streams (GET, no body) in one write; their ids."""
        headers = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1")]
        opened, frames = [], b""
        for _ in range(count):
            stream_id, self.next_stream = self.next_stream, self.next_stream + 2
            block = self.encoder.encode([*headers, (":path", f"/{stream_id}")])
            frames += HeadersFrame(
                stream_id, block, flags=["END_HEADERS", "END_STREAM"]
            ).serialize()
            opened.append(stream_id)
        self.writer.write(frames)
        await self.writer.drain()
        return opened

    async def read(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Note what the server sends for up to *seconds*, until it closes or *until*."""
        try:
            async with asyncio.timeout(seconds):
                while not until():
                    if not (chunk := await self.reader.read(65536)):
                        self.closed = True
                        break
                    self.buffer += chunk
                    self._parse()
        except TimeoutError:
            pass
        except ConnectionError:
            self.closed = True

    def _parse(self) -> None:
        while len(self.buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
            if len(self.buffer) < 9 + length:
                return
            frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
            self.buffer = self.buffer[9 + length :]
            if isinstance(frame, HeadersFrame | DataFrame) and "END_STREAM" in frame.flags:
                self.answered.add(frame.stream_id)
            elif isinstance(frame, RstStreamFrame) and frame.error_code == REFUSED_STREAM:
                self.refused.add(frame.stream_id)
            elif isinstance(frame, GoAwayFrame):
                self.goaways.append(frame)

    @property
    def last_stream_id(self) -> int | None:
        """The lowest last stream id of the server's GOAWAYs: streams it has processed."""
        return min(goaway.last_stream_id for goaway in self.goaways) if self.goaways else None


async def until_reached(app: HeldApp, count: int) -> None:
    """Wait (up to 10 s) until *count* requests have reached the app, and a little more."""
    await eventually(lambda: len(app.paths) >= count, what=f"{count} requests at the app")
    # A quiet spell, not a condition: any the server would let through after those.
    await asyncio.sleep(0.2)


async def burst_over_the_limit(app: HeldApp, port: int, seconds: float = 10) -> H2Client:
    """``LIMIT + 3`` requests at once, held by the app until all have arrived; then
    what the server sends within *seconds*."""
    client = await H2Client.connect(port)
    await client.open(LIMIT + 3)
    await until_reached(app, LIMIT)
    app.release.set()
    await client.read(seconds)
    client.writer.close()
    return client


@pytest.mark.usefixtures("bare_h2")
async def test_installed_hypercorn_still_lets_streams_past_keep_alive_max_requests(
    held: tuple[HeldApp, int],
) -> None:
    """Fails once hypercorn stops at the limit: then drop ``_KeepAliveLimitedH2``'s
    ``_handle_events`` (tests/test_attacks.py checks the limit on the server)."""
    app, port = held
    await burst_over_the_limit(app, port, seconds=0)
    assert len(app.paths) > LIMIT  # all LIMIT + 3: hypercorn creates what h2 has read


@pytest.mark.usefixtures("bare_h2")
async def test_installed_hypercorn_still_loses_requests_in_progress_at_the_limit(
    held: tuple[HeldApp, int],
) -> None:
    """Fails once hypercorn answers the streams its GOAWAY counts as accepted."""
    app, port = held
    # It closes only at keep_alive_timeout; the answers would have come long before.
    client = await burst_over_the_limit(app, port, seconds=3)
    assert client.last_stream_id is not None
    accepted = set(range(1, client.last_stream_id + 1, 2))
    assert accepted - client.answered  # GOAWAY closed h2: the answers were dropped


@pytest.mark.usefixtures("fixed_h2")
async def test_with_the_fix_the_limit_holds_and_every_accepted_request_is_answered(
    held: tuple[HeldApp, int],
) -> None:
    app, port = held
    client = await burst_over_the_limit(app, port)
    accepted = set(range(1, 2 * LIMIT, 2))
    assert len(app.paths) == LIMIT
    assert client.answered == accepted
    assert client.refused == {2 * LIMIT + 1, 2 * LIMIT + 3, 2 * LIMIT + 5}
    assert [goaway.last_stream_id for goaway in client.goaways] == [2 * LIMIT - 1]
    assert [goaway.error_code for goaway in client.goaways] == [0]
    assert client.closed  # once answered, well before keep_alive_timeout


@pytest.mark.usefixtures("fixed_h2")
async def test_with_the_fix_a_client_that_keeps_opening_streams_is_cut(
    held: tuple[HeldApp, int],
) -> None:
    """Past the limit, more than ``h2_max_concurrent_streams`` refusals end the
    connection, even with accepted requests still in progress.

    One stream at a time, each refused before the next: so the client stays within
    MAX_CONCURRENT_STREAMS, which h2 enforces itself (a PROTOCOL_ERROR GOAWAY).
    """
    app, port = held
    client = await H2Client.connect(port)
    await client.open(LIMIT)
    await until_reached(app, LIMIT)
    while not client.closed and len(client.refused) <= CONCURRENT:
        refused = len(client.refused)
        await client.open(1)
        await client.read(10, until=lambda: len(client.refused) > refused)  # noqa: B023
    await client.read(10)
    client.writer.close()
    assert not app.release.is_set()
    assert len(app.paths) == LIMIT
    assert client.closed
    assert [goaway.error_code for goaway in client.goaways] == [ENHANCE_YOUR_CALM]
    assert client.last_stream_id == 2 * LIMIT - 1


def test_hypercorn_h2_keep_alive_internals_are_still_there() -> None:
    """What ``_KeepAliveLimitedH2`` overrides and reads, in hypercorn's ``H2Protocol``.

    It counts on ``_handle_events`` creating one stream per ``RequestReceived`` (each
    adding one to ``keep_alive_requests``), on ``_send_data`` forgetting a stream's
    buffer once its answer has ended, and on a default priority tree of 1,000 entries
    (which it replaces). Its own attributes must not clash with hypercorn's.
    """
    for name, expected in {
        "_handle_events": ["self", "events"],
        "_send_data": ["self", "stream_id"],
        "stream_send": ["self", "event"],
        "_priority_updated": ["self", "event"],
        "_flush": ["self"],
    }.items():
        assert parameters(getattr(H2Protocol, name)) == expected, name
    init = inspect.getsource(upstream_hypercorn.H2_PROTOCOL_INIT)
    assert "self.priority = priority.PriorityTree()" in init
    assert "self.stream_buffers" in init
    assert "self.keep_alive_requests = 0" in init
    handle = inspect.getsource(H2Protocol._handle_events)
    assert "await self._create_stream(event)" in handle
    assert "self.keep_alive_requests > self.config.keep_alive_max_requests" in handle
    assert "self.keep_alive_requests += 1" in inspect.getsource(H2Protocol._create_stream)
    send_data = inspect.getsource(H2Protocol._send_data)
    assert send_data.index("end_stream(") < send_data.index("del self.stream_buffers")
    limited = upstream_hypercorn._KeepAliveLimitedH2
    added = set(limited.__annotations__) | {
        name for name, value in vars(limited).items() if inspect.isfunction(value)
    }
    added -= set(vars(H2Protocol))  # the overrides
    assert added
    module = inspect.getsource(inspect.getmodule(H2Protocol))  # type: ignore[arg-type]
    assert not {name for name in added if f"self.{name}" in module}


def test_hypercorn_worker_entry_points_keep_their_signature() -> None:
    """``serve.serve_worker`` loads the app and runs hypercorn's ``worker_serve`` with a
    shutdown trigger of its own, as hypercorn's asyncio and uvloop workers do
    (tests/test_serve.py checks the draining, test_streams_live the streams' end)."""
    assert parameters(worker_serve) == ["app", "config", "sockets", "shutdown_trigger"]
    assert parameters(load_application) == ["path", "wsgi_max_body_size"]
    assert parameters(Config.create_sockets) == ["self"]


# --- quart-schema (upstream/quart_schema.py) --------------------------------------------


def test_quart_schema_looks_type_adapter_up_by_name() -> None:
    """``shared_type_adapter`` replaces the module's ``TypeAdapter``, which ``model_dump``
    and ``model_load`` look up at each call (tests/test_quart_schema_fixes.py fails once
    they reuse adapters themselves)."""
    assert "TypeAdapter" in vars(quart_schema.conversion)
    for function in (quart_schema.conversion.model_dump, quart_schema.conversion.model_load):
        assert "TypeAdapter" in function.__code__.co_names


def test_quart_schema_still_wraps_quarts_make_response() -> None:
    """quart-schema's ``make_response`` wrapper keeps Quart's own as ``__wrapped__``."""
    app = Quart(__name__)
    QuartSchema(app)
    plain = app.make_response.__wrapped__  # type: ignore[attr-defined]
    assert plain.__func__ is Quart.make_response
    assert plain.__self__ is app


# --- The registry -----------------------------------------------------------------------


def _registry() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    start = text.index("## Reaching into libraries")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_upstream_module_and_test_is_in_the_registry() -> None:
    registry = _registry()
    for module in sorted((PACKAGE / "upstream").glob("*.py")):
        if module.name != "__init__.py":
            assert f"`upstream/{module.name}`" in registry, f"{module.name} is not registered"
    assert "`serve/supervisor.py`" in registry
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", registry)
    assert named
    for path, name in named:
        source = (ROOT / path).read_text()
        assert re.search(rf"^(async )?def {name}\(", source, re.M), f"no {path}::{name}"


# Private names this app uses on objects of its own, or a library's documented ones.
OWN_PRIVATE = {
    ("pool.py", "connection"),  # the data layer's own Connection classes
    ("access_log.py", "atoms"),  # access_log's own Atoms
    ("request_id.py", "g"),  # Werkzeug documents LocalProxy._get_current_object
}


def _private(name: str) -> bool:
    """``_name`` is private; ``__name__`` and gettext's ``_`` are not."""
    return name.startswith("_") and name != "_" and not name.endswith("__")


def _defined_names(tree: ast.AST) -> set[str]:
    """Every name the module defines or assigns: functions, classes, attributes set."""
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
    return defined


def _private_reaches(path: Path, defined: set[str]) -> Iterator[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if any(_private(part) for part in alias.name.split(".")):
                    yield f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [*node.module.split("."), *(alias.name for alias in node.names)]
            if any(_private(name) for name in names):
                yield f"from {node.module} import {', '.join(a.name for a in node.names)}"
        elif isinstance(node, ast.Attribute):
            owner = ast.unparse(node.value)
            if node.attr == "__wrapped__" or (
                _private(node.attr)
                and (path.name, owner) not in OWN_PRIVATE
                # On self, a private name the app never defines is a library base class's.
                and (owner not in ("self", "cls") or node.attr not in defined)
            ):
                yield f"{owner}.{node.attr}"


def test_no_module_outside_the_registry_reaches_into_a_library() -> None:
    """A private name of a library, used outside quart_app/upstream/, is unregistered.

    This sees imports of private modules and names, ``__wrapped__``, private attributes
    read on other objects, and private names read on ``self``/``cls`` that the app
    never defines (a library base class's). A private attribute of a base class that the
    module also assigns (``self._redis = None``) passes: that is for review to catch.
    """
    modules = [
        path
        for path in PACKAGE.rglob("*.py")
        if "upstream" not in path.relative_to(PACKAGE).parts
        and "migrations" not in path.relative_to(PACKAGE).parts
    ]
    # Our own base classes live in other modules (data.pool's Pool, say).
    defined = set().union(*(_defined_names(ast.parse(path.read_text())) for path in modules))
    found = {
        f"{path.relative_to(ROOT)}: {reach}"
        for path in modules
        for reach in _private_reaches(path, defined)
    }
    assert found == set(), "move these into quart_app/upstream/ and register them"
