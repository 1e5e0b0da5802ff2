"""Live fan-out: each committed event reaches every open stream it concerns.

Each app (each worker process) has one ``Hub``. The hub keeps a cursor, the id of the
last event it has read from the log. When told that a logged transaction committed,
and at the latest every ``poll`` seconds, it reads everyone's events after the cursor,
in id order (ids grow in commit order: ``data/events.py``), and hands each one to the
open ``Stream`` objects it concerns:

- a user's ``thing.*`` event to that user's streams of things;
- a ``user.*`` event (no user id) to the admins' streams;
- an ``access.changed`` event (a session revoked, a password changed, a user demoted
  or deactivated), and a ``user.deleted``, to nobody: the hub checks that user's open
  streams against the session store again, and ends those no longer allowed.

So the log is the one source of truth, read once per process per change however many
streams are open, and a lost notification costs latency, never an event. What tells a
hub that something committed (``EVENT_FANOUT``):

``postgres``
    ``LISTEN`` on a connection of its own; each logged transaction sends ``NOTIFY``,
    which PostgreSQL delivers when, and only if, it commits. Its payload tells the
    sending hub its own: it reads the log as each of them ends, and heeds one's
    NOTIFY only when the end could not tell whether it committed.
``redis``
    ``SUBSCRIBE`` to a channel; each process ``PUBLISH``es after a logged transaction
    commits. For SQLite shared by several processes, when a Redis is at hand.
``poll``
    Nothing: the log is read every ``EVENT_POLL_INTERVAL`` seconds.

A stream's buffer is bounded: a subscriber that stops reading is ended once its
buffer is full, and never slows the hub or the other streams down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from quart import Quart, current_app
from redis.asyncio import Redis
from redis.exceptions import RedisError

from quart_app.data.database import db, dialect_of
from quart_app.data.events import (
    ACCESS_CHANGED,
    NOTIFY_CHANNEL,
    THING_EVENTS,
    USER_DELETED,
    USER_EVENTS,
    everyones_events_after,
    log_bounds,
    on_commit,
)
from quart_app.data.models import SessionKind
from quart_app.data.pool import Connection, DatabaseUnavailable
from quart_app.data.postgres import POSTGRES_OUTAGES, PostgresConnection, PostgresPool
from quart_app.data.session_store import session_account

log = logging.getLogger(__name__)
_Key = TypeVar("_Key")

EXTENSION_KEY = "quart_app.fanout"
# The LISTEN connection's application_name, as pg_stat_activity shows it.
LISTENER_NAME = "quart_app live updates"
FANOUTS = ("postgres", "redis", "poll")
# Events read from the log per round trip.
_BATCH = 500
# Seconds between attempts to reach a fan-out engine that is down.
_RECONNECT_DELAY = 1.0
# Seconds a stream's request waits for a hub that is starting, before its 503.
_START_WAIT = 1.0
_LISTEN_ERRORS: tuple[type[BaseException], ...] = (
    *POSTGRES_OUTAGES,
    OSError,
    TimeoutError,
    asyncpg.exceptions.InterfaceError,
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event as a stream sends it: ``id:``, ``event:`` and ``data:`` (JSON text)."""

    id: int
    kind: str
    body: str


# Why a stream ended, for its last frame and the log.
ENDED_REVOKED = "revoked"
ENDED_OVERFLOW = "overflow"
ENDED_SHUTDOWN = "shutdown"


class Stream:
    """One open stream: whose it is, what it shows, and its bounded buffer."""

    def __init__(
        self,
        hub: Hub,
        *,
        user_id: int,
        audience: int | None,
        session_id: str,
        session_kind: SessionKind,
        admin: bool,
        sent: int,
    ) -> None:
        self.hub = hub
        self.user_id = user_id
        # Whose events it shows: the user's own, or None for the admins' stream.
        self.audience = audience
        self.session_id = session_id
        self.session_kind = session_kind
        self.admin = admin
        # The id of the last event sent (or skipped as not this stream's).
        self.sent = sent
        self.ended: str | None = None
        self._buffer: deque[Delivery] = deque()
        self._wake = asyncio.Event()
        self._waiting = False
        # The task writing this stream to its client (set once it writes), cancelled if
        # it is stuck there.
        self.task: asyncio.Task[Any] | None = None

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds of event this stream shows."""
        return USER_EVENTS if self.audience is None else THING_EVENTS

    def offer(self, delivery: Delivery) -> None:
        """Buffer *delivery* for the client; end the stream if its buffer is full."""
        if self.ended is not None or delivery.id <= self.sent:
            return
        if len(self._buffer) >= self.hub.buffer_size:
            self.end(ENDED_OVERFLOW)
            return
        self._buffer.append(delivery)
        self._wake.set()

    def end(self, reason: str) -> None:
        """End the stream: at once if it waits for events, else at its next write.

        A writer that has been stuck writing to a client that stopped reading for a
        whole buffer's worth of events is cancelled, which closes its connection.
        """
        if self.ended is not None:
            return
        self.ended = reason
        self._buffer.clear()
        self._wake.set()
        self.hub.leave(self)
        if reason == ENDED_OVERFLOW and not self._waiting and self.task is not None:
            self.task.cancel()

    async def next_batch(self, quiet: float) -> list[Delivery] | None:
        """The buffered events, waiting up to *quiet* seconds for one.

        ``[]`` when none came in time (send a keep-alive), ``None`` once the stream ended.
        """
        if not self._buffer and self.ended is None:
            self._waiting = True
            try:
                async with asyncio.timeout(quiet):
                    await self._wake.wait()
            except TimeoutError:
                pass
            finally:
                self._waiting = False
        if self.ended is not None:
            return None
        self._wake.clear()
        batch = [delivery for delivery in self._buffer if delivery.id > self.sent]
        self._buffer.clear()
        if batch:
            self.sent = batch[-1].id
        return batch


def _discard(index: dict[_Key, set[Stream]], key: _Key, stream: Stream) -> None:
    """Take *stream* out of *index*'s set under *key*, and the set once it is empty."""
    streams = index.get(key)
    if streams is not None:
        streams.discard(stream)
        if not streams:
            del index[key]


class StreamRefused(Exception):
    """A stream cannot start: ``status`` says why (429 over the cap, 503 unavailable)."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class Hub:
    """This process's open streams, and the one reader of the log that feeds them."""

    def __init__(
        self,
        app: Quart,
        *,
        fanout: str,
        redis_url: str | None,
        poll: float,
        buffer_size: int,
        per_user: int,
    ) -> None:
        self.app = app
        self.fanout = fanout
        self.redis_url = redis_url
        self.poll = poll
        self.buffer_size = buffer_size
        self.per_user = per_user
        self.cursor: int | None = None
        self.engine_up = fanout == "poll"
        self.accepting = True
        self._streams_of: dict[int, set[Stream]] = {}
        self._audiences: dict[int | None, set[Stream]] = {}
        self._nudged = asyncio.Event()
        self._became_available = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._publisher: Redis | None = None
        # PostgreSQL: the LISTEN connection, on which the log is read too.
        self._listener: Connection | None = None
        self._listener_lost = asyncio.Event()
        self._publishing: asyncio.Task[None] | None = None
        self._publish_again = False
        # This hub's own NOTIFYs (PostgreSQL): it reads the log as soon as each of its
        # logged transactions ends, and reading again when the NOTIFY comes back would
        # read twice per write. Their payloads: this prefix and a number.
        self._sender = secrets.token_hex(8)
        self._numbers = itertools.count()
        # Own transactions still running, and whether their NOTIFY came already.
        self._own_running: dict[str, bool] = {}
        # Own transactions whose commit was acknowledged and read for, whose NOTIFY has
        # not come yet: it needs no read. (Forgotten when the LISTEN connection is new.)
        self._own_read: set[str] = set()

    # -- streams ---------------------------------------------------------------------

    def join(
        self,
        *,
        user_id: int,
        audience: int | None,
        session_id: str,
        session_kind: SessionKind,
        admin: bool,
    ) -> Stream:
        """Open a stream that gets every event after the hub's cursor.

        Raises ``StreamRefused``: 503 while the log or the fan-out engine is out of
        reach (or the worker shuts down), 429 past ``per_user`` open streams.
        """
        self.check_room(user_id)
        owned = self._streams_of.setdefault(user_id, set())
        stream = Stream(
            self,
            user_id=user_id,
            audience=audience,
            session_id=session_id,
            session_kind=session_kind,
            admin=admin,
            sent=self.cursor or 0,
        )
        owned.add(stream)
        self._audiences.setdefault(audience, set()).add(stream)
        return stream

    def check_room(self, user_id: int) -> None:
        """Raise ``StreamRefused`` unless *user_id* may open a stream here now."""
        if not self.accepting:
            raise StreamRefused(503, "The server is restarting", 1)
        if not self.available:
            raise StreamRefused(503, "Live updates are unavailable", 5)
        if self.open_streams(user_id) >= self.per_user:
            raise StreamRefused(429, "Too many open streams", 5)

    def leave(self, stream: Stream) -> None:
        """Forget *stream* (it ended, or its client went away)."""
        _discard(self._streams_of, stream.user_id, stream)
        _discard(self._audiences, stream.audience, stream)

    @property
    def available(self) -> bool:
        """Whether a stream can start: the log has been read and the engine is up."""
        return self.cursor is not None and self.engine_up

    def _availability_changed(self) -> None:
        if self.available:
            self._became_available.set()
        else:
            self._became_available.clear()

    async def wait_available(self) -> None:
        """Give a hub that is starting (or reconnecting) a moment to become available."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_START_WAIT):
                await self._became_available.wait()

    def open_streams(self, user_id: int | None = None) -> int:
        """How many streams are open here (of *user_id*, if given)."""
        if user_id is not None:
            return len(self._streams_of.get(user_id, ()))
        return sum(len(owned) for owned in self._streams_of.values())

    def drain(self) -> None:
        """End every stream and refuse new ones: the worker is shutting down."""
        self.accepting = False
        for owned in list(self._streams_of.values()):
            for stream in list(owned):
                stream.end(ENDED_SHUTDOWN)

    # -- reading the log ---------------------------------------------------------------

    def nudge(self) -> None:
        """Something committed: read the log soon."""
        self._nudged.set()

    async def _pump(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._nudged.wait()
            self._nudged.clear()
            if not await self._try_reading_log():
                await asyncio.sleep(_RECONNECT_DELAY)

    async def _try_reading_log(self) -> bool:
        try:
            async with self.app.app_context():
                await self._read_log()
        except DatabaseUnavailable as error:
            log.warning("live updates: the event log is out of reach: %s", error)
            return False
        except Exception as error:
            # Say, a database not migrated yet: streams answer 503 until it is.
            log.warning("live updates: cannot read the event log: %r", error)
            return False
        return True

    async def _read_log(self) -> None:
        # On PostgreSQL, the LISTEN connection: the hub never waits for a place in the
        # pool behind requests, nor takes one from them.
        connection = self._listener
        if self.fanout == "postgres" and connection is None:
            return
        try:
            await self._read_log_on(connection)
        except _LISTEN_ERRORS:
            if connection is None:
                raise
            # It is the LISTEN connection that failed: listen again.
            self._listener_lost.set()

    async def _read_log_on(self, connection: Connection | None) -> None:
        if self.cursor is None:
            self.cursor = (await log_bounds(connection=connection))[1]
            self._availability_changed()
        while True:
            rows = await everyones_events_after(self.cursor, _BATCH, connection=connection)
            recheck: set[int] = set()
            for row in rows:
                self.cursor = row.id
                if row.kind == ACCESS_CHANGED:
                    recheck.add(row.user_id)
                    continue
                if row.kind == USER_DELETED:
                    recheck.add(json.loads(row.body)["id"])
                delivery = Delivery(row.id, row.kind, row.body)
                for stream in list(self._audiences.get(row.user_id, ())):
                    if row.kind in stream.kinds:
                        stream.offer(delivery)
            for user_id in recheck:
                await self.recheck(user_id)
            if len(rows) < _BATCH:
                return

    async def recheck(self, user_id: int) -> None:
        """End *user_id*'s streams whose session is no longer live (or admin, for the
        admins' stream)."""
        for stream in list(self._streams_of.get(user_id, ())):
            if not await still_allowed(stream):
                stream.end(ENDED_REVOKED)

    # -- the fan-out engines ---------------------------------------------------------

    async def _listen_postgres(self) -> None:
        pool = db.pool
        assert isinstance(pool, PostgresPool)
        while True:
            try:
                connection: asyncpg.Connection = await pool.open_unpooled(LISTENER_NAME)
            except _LISTEN_ERRORS as error:
                log.warning("live updates: cannot LISTEN: %s", error)
                await asyncio.sleep(_RECONNECT_DELAY)
                continue
            lost = self._listener_lost = asyncio.Event()
            try:
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, self._notified)
                # The log is read on it too, every poll at least, which finds a cut
                # that sent no FIN (_read_log).
                self._listener = PostgresConnection(connection, echo=False)
                # Those whose NOTIFY went while nobody listened never come.
                self._own_read.clear()
                self._engine(up=True)
                # Whatever committed while nobody listened.
                self.nudge()
                await lost.wait()
                log.warning("live updates: lost the LISTEN connection")
            except _LISTEN_ERRORS as error:
                log.warning("live updates: lost the LISTEN connection: %s", error)
            finally:
                self._listener = None
                self._engine(up=False)
                connection.terminate()
            await asyncio.sleep(_RECONNECT_DELAY)

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if payload in self._own_running:
            # Its end reads the log, and now knows it committed.
            self._own_running[payload] = True
        elif payload in self._own_read:
            self._own_read.discard(payload)
        else:
            # Another process's, or one of ours whose end could not tell it committed
            # and whose read may have come before the commit.
            self.nudge()

    async def _listen_redis(self) -> None:
        assert self.redis_url is not None
        while True:
            client = redis_client(self.redis_url, self.poll)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(NOTIFY_CHANNEL)
                self._engine(up=True)
                self.nudge()
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self.poll
                    )
                    if message is not None:
                        self.nudge()
                    else:
                        # A cut that sent no FIN is found by asking.
                        await pubsub.ping()
            except (RedisError, OSError) as error:
                log.warning("live updates: lost the Redis subscription: %s", error)
            finally:
                self._engine(up=False)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
            await asyncio.sleep(_RECONNECT_DELAY)

    def _engine(self, *, up: bool) -> None:
        self.engine_up = up
        self._availability_changed()

    def notification(self) -> str:
        """The payload of the NOTIFY of this process's next logged transaction."""
        if self.fanout != "postgres":
            # No NOTIFY is listened to: nothing to tell apart.
            return ""
        payload = f"{self._sender}:{next(self._numbers)}"
        self._own_running[payload] = False
        return payload

    def transaction_ended(self, notification: str, *, committed: bool) -> None:
        """A logged transaction of this process ended: read the log, tell every process."""
        heard = self._own_running.pop(notification, False)
        # This worker's own streams need not wait for the round trip.
        self.nudge()
        if notification and committed and not heard:
            self._own_read.add(notification)
        if self.fanout != "redis":
            # PostgreSQL delivers its NOTIFY to the others; polling hubs look by themselves.
            return
        if self._publishing is not None and not self._publishing.done():
            # One publish after the one in flight covers every commit until then.
            self._publish_again = True
            return
        self._publishing = asyncio.create_task(self._publish())

    async def _publish(self) -> None:
        if self._publisher is None:
            assert self.redis_url is not None
            self._publisher = redis_client(self.redis_url, self.poll)
        while True:
            self._publish_again = False
            try:
                await self._publisher.publish(NOTIFY_CHANNEL, b"")
            except (RedisError, OSError) as error:
                # The other processes' hubs find the change at their next poll.
                log.warning("live updates: cannot publish to Redis: %s", error)
                self.nudge()
                return
            if not self._publish_again:
                return

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start reading the log and listening to the fan-out engine."""
        await self._try_reading_log()
        self._tasks.append(asyncio.create_task(self._pump()))
        if self.fanout == "postgres":
            self._tasks.append(asyncio.create_task(self._listen_postgres()))
        elif self.fanout == "redis":
            self._tasks.append(asyncio.create_task(self._listen_redis()))

    async def stop(self) -> None:
        """End every stream and stop."""
        self.drain()
        tasks = [*self._tasks, *([self._publishing] if self._publishing else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._publisher is not None:
            await self._publisher.aclose()


def redis_client(url: str, timeout: float) -> Redis:
    """A Redis client that gives up on a silent server after *timeout* seconds."""
    client: Redis = Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout + 1.0
    )
    return client


async def still_allowed(stream: Stream) -> bool:
    """Whether *stream*'s session is still live, and still an admin's for the admins'
    stream."""
    try:
        account = await session_account(stream.session_id, stream.session_kind)
    except DatabaseUnavailable:
        # Unknown: keep the stream; the next check decides.
        return True
    return account is not None and (account.is_admin or not stream.admin)


def choose_fanout(config: dict[str, Any]) -> tuple[str, str | None]:
    """The fan-out engine ``EVENT_FANOUT`` names, or ``auto``'s choice, and its Redis URL.

    ``auto``: PostgreSQL's own ``LISTEN/NOTIFY`` on PostgreSQL; else Redis, if
    ``EVENT_REDIS_URL`` or ``RATE_LIMIT_STORAGE_URL`` names one; else polling.
    """
    fanout = config["EVENT_FANOUT"]
    redis_url = config["EVENT_REDIS_URL"] or config["RATE_LIMIT_STORAGE_URL"]
    if redis_url is not None and not str(redis_url).startswith(("redis://", "rediss://")):
        redis_url = None
    if fanout == "auto":
        if dialect_of(config["DATABASE_URL"]) == "postgresql":
            fanout = "postgres"
        else:
            fanout = "redis" if redis_url else "poll"
    if fanout not in FANOUTS:
        raise ValueError(f"EVENT_FANOUT must be auto or one of {', '.join(FANOUTS)}")
    if fanout == "postgres" and dialect_of(config["DATABASE_URL"]) != "postgresql":
        raise ValueError("EVENT_FANOUT=postgres needs a PostgreSQL DATABASE_URL")
    if fanout == "redis" and not redis_url:
        raise ValueError("EVENT_FANOUT=redis needs EVENT_REDIS_URL (a redis:// URL)")
    return fanout, redis_url


def hub() -> Hub:
    """The current app's hub."""
    found: Hub = current_app.extensions[EXTENSION_KEY]
    return found


def init_app(app: Quart) -> None:
    """Give *app* its hub, running while the app serves."""
    fanout, redis_url = choose_fanout(app.config)
    poll = float(app.config["EVENT_POLL_INTERVAL"])
    instance = Hub(
        app,
        fanout=fanout,
        redis_url=redis_url,
        poll=poll if fanout == "poll" else max(poll, 5.0),
        buffer_size=int(app.config["EVENT_STREAM_BUFFER"]),
        per_user=int(app.config["EVENT_STREAMS_PER_USER"]),
    )
    app.extensions[EXTENSION_KEY] = instance
    on_commit(app, instance)

    @app.while_serving
    async def serving() -> AsyncGenerator[None, None]:
        await instance.start()
        yield
        await instance.stop()
