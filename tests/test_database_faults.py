"""A PostgreSQL that stops answering: 503 + Retry-After in bounded time, never a hang.

CONTRACT.md section 6: "503 (+Retry-After) when the database cannot be reached or does
not answer in time (a request never hangs on it)". A refused connection fails at once
(test_health covers it); the hard case is a black hole: connections stay open, new ones
are accepted, and no byte ever comes back. Only timeouts end a wait on that.

Each test runs a real hypercorn server whose database URL points at a relay in front of
PostgreSQL, and talks to it with httpx the way a client would. The client gives up after
CLIENT_TIMEOUT seconds: a request still unanswered by then has hung.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from quart_app.config import DEFAULTS
from quart_app.data.models import UserType
from tests.helpers.apps import add_user, make_app
from tests.helpers.live import hypercorn_process, prepare_server_env, wait_until_serving

pytestmark = pytest.mark.live

POSTGRES_PORT = 5432
USERNAME = "faulty"
PASSWORD = "faulty-password-1"
CREDENTIALS = {"username": USERNAME, "password": PASSWORD}

# The app's own limits on waiting for the database, in seconds.
SERVER_ENV = {
    "QUART_DATABASE_CONNECT_TIMEOUT": "2",
    "QUART_DATABASE_STATEMENT_TIMEOUT": "2",
    "QUART_DATABASE_POOL_TIMEOUT": "2",
    # Recovery loops sign in repeatedly; a 429 would only hide what is tested here.
    "QUART_RATE_LIMIT_ENABLED": "false",
}
UNAVAILABLE_WITHIN = 10.0  # seconds a 503 may take while the database is silent
CLIENT_TIMEOUT = 15.0  # seconds after which a request counts as hung
RECOVERY_WITHIN = 10.0  # seconds the service may take to come back once the database does
HEALTHZ_WITHIN = 1.0  # liveness never waits on the database
BURST = 30
READY_FOR_QUERY_IDLE = b"Z\x00\x00\x00\x05I"


# --- A relay that can relay, swallow everything, or refuse -------------------------------


class Mode(enum.Enum):
    RELAY = "relay"
    BLACK_HOLE = "black hole"  # connections stay open and new ones are accepted; nothing moves
    REFUSE = "refuse"  # the port is closed and every open connection is cut


@dataclass(eq=False)
class _Link:
    """One accepted connection and its peer connection to PostgreSQL."""

    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    sent_insert: bool = False  # the app sent an INSERT into things
    inserted: bool = False  # PostgreSQL answered that it inserted the row


class FaultyRelay:
    """Forwards 127.0.0.1:<port> to PostgreSQL, or stops doing so, as ``set_mode`` says.

    In a black hole, bytes are held, not dropped, in both directions (accepted
    connections included): a network that heals delivers them late, as TCP would. That
    is how a write whose client gave up can still reach the database after the fact.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.mode = Mode.REFUSE
        self.commit_answer_held = False
        self._flowing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._black_hole_once_committed = False

    def url_for(self, database_url: str) -> str:
        return database_url.replace(f"127.0.0.1:{self.target_port}", f"127.0.0.1:{self.port}")

    async def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        if mode is Mode.RELAY:
            self._flowing.set()
        else:
            self._flowing.clear()
        if mode is Mode.REFUSE:
            await self._cut_everything()
        elif self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    def black_hole_once_committed(self) -> None:
        """Relay until PostgreSQL has committed an INSERT into ``things``, then go silent.

        The answer that says so (to the INSERT itself outside a transaction, else to
        the COMMIT) is held: the row is stored, and the app cannot know it.
        """
        self._black_hole_once_committed = True

    async def _cut_everything(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for link in list(self._links):
            for writer in link.writers:
                writer.transport.abort()
        self._links.clear()

    def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        # A task of ours, not asyncio's: cancelling it in _cut_everything logs nothing.
        task = asyncio.create_task(self._serve(client_r, client_w))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        link = _Link([client_w])
        self._links.add(link)
        try:
            await self._flowing.wait()  # accepted, and then nothing, while in a black hole
            try:
                server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                return
            link.writers.append(server_w)
            await asyncio.gather(
                self._pipe(client_r, server_w, link, upstream=True),
                self._pipe(server_r, client_w, link, upstream=False),
            )
        finally:
            for writer in link.writers:
                writer.transport.abort()
            self._links.discard(link)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        upstream: bool,
    ) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()  # hold what was read
                if self._black_hole_once_committed:
                    self._watch_for_commit(link, data, upstream=upstream)
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
            await self._flowing.wait()  # the end of the stream is held too
            writer.write_eof()
        except OSError:  # one side was reset: so is the other
            for each in link.writers:
                each.transport.abort()

    def _watch_for_commit(self, link: _Link, data: bytes, *, upstream: bool) -> None:
        # PostgreSQL's wire protocol: asyncpg sends the statement's text when it prepares
        # it; the answer to a statement ends in CommandComplete ("INSERT 0 1"), and each
        # exchange in ReadyForQuery, whose status "I" means no transaction is open.
        if upstream:
            link.sent_insert = link.sent_insert or b"INSERT INTO things" in data
            return
        if not link.sent_insert:
            return
        start = 0
        if not link.inserted and (start := data.find(b"INSERT 0 1\x00")) >= 0:
            link.inserted = True
        if link.inserted and data.find(READY_FOR_QUERY_IDLE, start) >= 0:
            # Committed, and this is the answer: hold it, and everything after it.
            self._black_hole_once_committed = False
            self.commit_answer_held = True
            self.mode = Mode.BLACK_HOLE
            self._flowing.clear()


# --- Requests and what a client sees of them ----------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A request, and the status it gets while the database answers."""

    method: str
    path: str
    ok: int
    body: dict[str, Any] | None = None
    signed_in: bool = True

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def new_thing() -> Probe:
    return Probe("POST", "/api/things", 201, {"title": f"thing-{uuid.uuid4().hex[:12]}"})


def probes() -> list[Probe]:
    """The requests that need the database: reads, a write, and a sign-in."""
    return [
        Probe("GET", "/api/things", 200),
        Probe("GET", "/api/me", 200),
        new_thing(),
        Probe("POST", "/api/tokens", 201, CREDENTIALS, signed_in=False),
    ]


LIST_THINGS = Probe("GET", "/api/things?limit=100", 200)
HEALTHZ = Probe("GET", "/healthz", 200, signed_in=False)
READYZ = Probe("GET", "/readyz", 200, signed_in=False)


@dataclass
class Outcome:
    probe: Probe
    seconds: float
    response: httpx.Response | None  # None: no answer within CLIENT_TIMEOUT

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code

    def __str__(self) -> str:
        if self.response is None:
            return f"{self.probe}: HUNG, no answer in {self.seconds:.1f}s"
        return f"{self.probe}: {self.status} in {self.seconds:.1f}s {self.response.text[:120]!r}"


@dataclass
class Live:
    url: str
    relay: FaultyRelay
    bearer: dict[str, str]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=CLIENT_TIMEOUT)

    async def send(self, client: httpx.AsyncClient, probe: Probe) -> Outcome:
        headers = self.bearer if probe.signed_in else {}
        start = time.monotonic()
        try:
            response: httpx.Response | None = await client.request(
                probe.method, probe.path, json=probe.body, headers=headers
            )
        except httpx.TimeoutException:
            response = None
        return Outcome(probe, time.monotonic() - start, response)

    async def recovered(self, client: httpx.AsyncClient, probe: Probe, deadline: float) -> Outcome:
        """Repeat *probe* while it gets 503, until it succeeds or *deadline* passes."""
        while True:
            outcome = await self.send(client, probe)
            if outcome.status != 503 or time.monotonic() > deadline:
                return outcome
            await asyncio.sleep(0.25)


def unavailable_problems(outcome: Outcome) -> list[str]:
    """What keeps *outcome* from being a prompt 503 JSON answer with Retry-After."""
    response = outcome.response
    if response is None:
        return [str(outcome)]
    problems = []
    if response.status_code != 503:
        problems.append(f"{outcome}: not 503")
    if outcome.seconds > UNAVAILABLE_WITHIN:
        problems.append(f"{outcome}: slower than {UNAVAILABLE_WITHIN}s")
    if response.headers.get("Content-Type") != "application/json":
        problems.append(f"{outcome}: Content-Type {response.headers.get('Content-Type')!r}")
    else:
        body = response.json()
        if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
            problems.append(f"{outcome}: body is not {{'error': '...'}}")
    if not is_retry_after(response.headers.get("Retry-After")):
        problems.append(f"{outcome}: Retry-After {response.headers.get('Retry-After')!r}")
    return problems


def is_retry_after(value: str | None) -> bool:
    """A Retry-After value: delay-seconds or an HTTP date."""
    if value is None:
        return False
    if value.isdigit():
        return True
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return True


# --- Fixtures: the relay, then a server behind it; both always torn down ------------------


@pytest.fixture
async def relay(postgres_url: str) -> AsyncIterator[FaultyRelay]:
    relay = FaultyRelay(POSTGRES_PORT)
    await relay.set_mode(Mode.RELAY)
    try:
        yield relay
    finally:
        await relay.set_mode(Mode.REFUSE)


@pytest.fixture
async def live(relay: FaultyRelay, postgres_url: str, tmp_path: Path) -> AsyncIterator[Live]:
    """A live server on the relay, and a bearer token of a plain user it knows."""
    env = await prepare_server_env(postgres_url, tmp_path, **SERVER_ENV)
    env["QUART_DATABASE_URL"] = relay.url_for(postgres_url)
    # Hashed at the server's cost: a cheaper hash would be upgraded at the first sign-in,
    # a write that has nothing to do with what is tested here.
    argon2 = {key: DEFAULTS[key] for key in ("ARGON2_TIME_COST", "ARGON2_MEMORY_COST")}
    setup = make_app(postgres_url, **argon2)
    async with setup.test_app():
        await add_user(setup, USERNAME, PASSWORD, UserType.USER)
    with hypercorn_process(env, tmp_path, "hypercorn") as server:
        try:
            await wait_until_serving(server)
            async with httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
                token = await client.post("/api/tokens", json=CREDENTIALS)
            assert token.status_code == 201, token.text
            yield Live(server.url, relay, {"Authorization": f"Bearer {token.json()['token']}"})
        finally:
            # Cut the stalled connections first: shutting down never waits on them.
            await relay.set_mode(Mode.REFUSE)


# --- The tests -----------------------------------------------------------------------------


async def test_requests_get_503_in_bounded_time_while_the_database_is_silent_then_recover(
    live: Live,
) -> None:
    async with live.client() as client:
        before = await live.send(client, Probe("GET", "/api/things", 200))
        assert before.status == 200, str(before)
        await live.relay.set_mode(Mode.BLACK_HOLE)

        problems: list[str] = []
        for probe in probes():
            outcome = await live.send(client, probe)
            problems += unavailable_problems(outcome)
            if outcome.response is None:
                break  # one hang proves the point; more would only cost CLIENT_TIMEOUT each
        assert not problems, "\n".join(problems)

        await live.relay.set_mode(Mode.RELAY)
        deadline = time.monotonic() + RECOVERY_WITHIN
        for probe in probes():
            after = await live.recovered(client, probe, deadline)
            assert after.status == probe.ok, f"after the database came back: {after}"


async def test_a_burst_in_a_black_hole_gets_503s_while_healthz_answers_at_once(
    live: Live,
) -> None:
    async with live.client() as client, live.client() as other:
        assert (await live.send(client, Probe("GET", "/api/things", 200))).status == 200
        await live.relay.set_mode(Mode.BLACK_HOLE)
        kinds = probes()
        burst = [kinds[n % len(kinds)] for n in range(BURST)]

        async def health_once_stalled() -> Outcome:
            await asyncio.sleep(0.5)  # the burst is in flight, waiting on the database
            return await live.send(other, HEALTHZ)

        *outcomes, ready, health = await asyncio.gather(
            *(live.send(client, probe) for probe in burst),
            live.send(other, READYZ),
            health_once_stalled(),
        )

    problems = []
    if health.status != 200 or health.seconds > HEALTHZ_WITHIN:
        problems.append(f"{health}: liveness must answer 200 within {HEALTHZ_WITHIN}s")
    if ready.status != 503 or ready.seconds > UNAVAILABLE_WITHIN:
        problems.append(f"{ready}: readiness must answer 503 within {UNAVAILABLE_WITHIN}s")
    failed = [outcome for outcome in outcomes if unavailable_problems(outcome)]
    if failed:
        problems.append(f"{len(failed)} of {BURST} requests were no prompt 503, such as:")
        problems += [problem for outcome in failed[:4] for problem in unavailable_problems(outcome)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param("before", id="silent-before-the-request"),
        pytest.param("after-commit", id="silent-once-it-was-committed"),
    ],
)
async def test_a_write_cut_off_gets_503_and_is_stored_at_most_once(live: Live, cut: str) -> None:
    write = new_thing()
    assert write.body is not None
    async with live.client() as client:
        assert (await live.send(client, LIST_THINGS)).status == 200
        if cut == "before":
            await live.relay.set_mode(Mode.BLACK_HOLE)
        else:
            live.relay.black_hole_once_committed()
        outcome = await live.send(client, write)
        problems = unavailable_problems(outcome)
        if cut == "after-commit" and not live.relay.commit_answer_held:
            problems.append(f"{outcome}: the relay never saw the INSERT committed")
        assert not problems, "\n".join(problems)

        await live.relay.set_mode(Mode.RELAY)  # held bytes, the commit's answer too, flow now
        listing = await live.recovered(client, LIST_THINGS, time.monotonic() + RECOVERY_WITHIN)
        assert listing.status == 200, f"after the database came back: {listing}"
        await asyncio.sleep(1)  # anything late (held bytes, a retry by the app) has landed
        listing = await live.send(client, LIST_THINGS)
    assert listing.status == 200, str(listing)
    assert listing.response is not None
    stored = [
        item for item in listing.response.json()["items"] if item["title"] == write.body["title"]
    ]
    assert len(stored) <= 1, f"one POST, stored {len(stored)} times: {stored}"
