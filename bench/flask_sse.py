"""Scenario S's reference: ``GET /api/things/events`` written the Flask way.

Flask under gunicorn's gthread worker: each open stream holds one of the worker's
threads for as long as it lasts, which is what a WSGI server does with a response
that never ends. The stream's semantics are quart_app's (``web/api/streams.py``), on
quart_app's own database:

- the same bearer tokens (quart-auth's itsdangerous format), checked against the same
  session and user tables with ``bench/flask_things.py``'s tuned statement; 401 with
  ``WWW-Authenticate`` without a live session;
- a cap of ``BENCH_STREAMS_PER_USER`` open streams per user in each worker, 429 with
  ``Retry-After`` past it;
- ``retry:``, then ``id:``/``event:``/``data:`` frames of the user's ``thing.*``
  events (the bodies quart_app logged, so the REST answers' JSON), a ``: keep-alive``
  comment after ``KEEPALIVE`` seconds of quiet, and a bounded buffer per stream.

Getting events across gunicorn's worker processes (the writes go to quart_app, which
logs each change in the ``events`` table and, on PostgreSQL, sends ``NOTIFY
quart_app_events`` as it commits) is done the strongest way a thread-per-stream server
allows: like quart_app's hub, one thread per worker process reads the log after its
cursor and hands each event to the queues of the streams it concerns. On PostgreSQL
that thread ``LISTEN``s (and reads at least every ``FALLBACK_POLL`` seconds); on SQLite
it polls every ``BENCH_EVENT_POLL_INTERVAL`` seconds (0.25 s, quart_app's default).
The alternatives cost more per stream: a query every 0.25 s per stream is 4 queries a
second per subscriber (40,000/s at 10,000), and a ``LISTEN`` connection per thread
needs a PostgreSQL backend per subscriber (``max_connections`` is 100 here).

``BENCH_SECRET_KEY`` is quart_app's ``QUART_SECRET_KEY``; ``BENCH_DATABASE_URL`` is
quart_app's database URL, async or sync.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Flask, Response, jsonify
from sqlalchemy import Engine, make_url

from bench.flask_things import (
    _DIALECTS,
    _engine,
    _error,
    _serializer,
    _session_id,
    _token_owner,
)

log = logging.getLogger(__name__)

# quart_app's defaults (config.py): EVENT_STREAM_RETRY, EVENT_STREAM_KEEPALIVE,
# EVENT_STREAM_BUFFER, EVENT_STREAMS_PER_USER.
RETRY_MS = 2000
KEEPALIVE = 15.0
BUFFER = 256
# quart_app's channel (data/events.py): every logged transaction sends it on commit.
NOTIFY_CHANNEL = "quart_app_events"
# Seconds between reads of the log when no notification came, as quart_app's hub.
FALLBACK_POLL = 5.0
# Events read from the log per round trip, as quart_app's hub.
BATCH = 500
THING_EVENTS = frozenset({"thing.created", "thing.updated", "thing.deleted"})
_EVENTS_AFTER = (
    "SELECT id, user_id, kind, body FROM events WHERE id > {mark} ORDER BY id LIMIT {mark}"
)
_NEWEST = "SELECT max(id) FROM events"
_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
# Put in a stream's queue to end it.
_OVERFLOW = "overflow"


class Stream:
    """One open stream: its user and its bounded queue of frames."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        # Frames to send, or _OVERFLOW once the client fell a whole buffer behind.
        self.queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.ended = False

    def offer(self, frame: str) -> None:
        if self.ended:
            return
        if self.queue.qsize() >= BUFFER:
            self.ended = True
            self.queue.put(_OVERFLOW)
            return
        self.queue.put(frame)


class Hub:
    """This worker process's open streams, and the one thread that feeds them."""

    def __init__(self, database_url: str, poll: float, per_user: int) -> None:
        url = make_url(database_url)
        self.postgres = url.get_backend_name() == "postgresql"
        self.database_url = url
        self.poll = poll
        self.per_user = per_user
        self.cursor: int | None = None
        self._lock = threading.Lock()
        self._streams: dict[int, set[Stream]] = {}
        self._ready = threading.Event()
        threading.Thread(target=self._run, name="sse-hub", daemon=True).start()

    def join(self, user_id: int) -> Stream | None:
        """A new stream for *user_id*, or None past the per-user cap."""
        self._ready.wait(5.0)
        with self._lock:
            owned = self._streams.setdefault(user_id, set())
            if len(owned) >= self.per_user:
                return None
            stream = Stream(user_id)
            owned.add(stream)
            return stream

    def leave(self, stream: Stream) -> None:
        with self._lock:
            owned = self._streams.get(stream.user_id)
            if owned is not None:
                owned.discard(stream)
                if not owned:
                    del self._streams[stream.user_id]

    def _run(self) -> None:
        while True:
            try:
                if self.postgres:
                    self._listen()
                else:
                    self._poll_sqlite()
            except Exception:
                log.exception("sse hub: reading the event log failed; again in 1 s")
                time.sleep(1.0)

    def _listen(self) -> None:
        conninfo = self.database_url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
            while True:
                self._read(connection.execute, "%s")
                # Returns at the first notification, or after FALLBACK_POLL seconds.
                for _ in connection.notifies(timeout=FALLBACK_POLL, stop_after=1):
                    pass

    def _poll_sqlite(self) -> None:
        connection = sqlite3.connect(self.database_url.database or "", check_same_thread=False)
        try:
            while True:
                self._read(connection.execute, "?")
                time.sleep(self.poll)
        finally:
            connection.close()

    def _read(self, execute: Any, mark: str) -> None:
        """Hand every event after the cursor to the streams it concerns."""
        if self.cursor is None:
            newest = execute(_NEWEST).fetchone()[0]
            self.cursor = int(newest or 0)
            self._ready.set()
        statement = _EVENTS_AFTER.format(mark=mark)
        while True:
            rows = execute(statement, (self.cursor, BATCH)).fetchall()
            for event_id, user_id, kind, body in rows:
                self.cursor = event_id
                if kind not in THING_EVENTS:
                    continue
                with self._lock:
                    streams = list(self._streams.get(user_id, ()))
                if streams:
                    frame = f"id: {event_id}\nevent: {kind}\ndata: {body}\n\n"
                    for stream in streams:
                        stream.offer(frame)
            if len(rows) < BATCH:
                return


def _frames(hub: Hub, stream: Stream) -> Iterator[str]:
    try:
        yield f"retry: {RETRY_MS}\n\n"
        while True:
            try:
                frame = stream.queue.get(timeout=KEEPALIVE)
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            if frame == _OVERFLOW:
                return
            frames = [frame]
            # What else is waiting goes out in the same write, as in quart_app.
            while not stream.queue.empty():
                more = stream.queue.get_nowait()
                if more == _OVERFLOW:
                    return
                frames.append(more)
            yield "".join(frames)
    finally:
        hub.leave(stream)


def create_app() -> Flask:
    """The Flask app; gunicorn calls it in each worker, so each has its own hub."""
    app = Flask(__name__)
    serializer = _serializer()
    database_url = os.environ["BENCH_DATABASE_URL"]
    engine: Engine = _engine(isolation_level="AUTOCOMMIT")
    session_user, now, _ = _DIALECTS[engine.dialect.name]
    hub = Hub(
        database_url,
        float(os.environ.get("BENCH_EVENT_POLL_INTERVAL", "0.25")),
        int(os.environ.get("BENCH_STREAMS_PER_USER", "10")),
    )

    @app.get("/api/things/events")
    def thing_events() -> Response:
        auth_id = _session_id(serializer)
        if auth_id is None:
            return _error(401, "Unauthorized")
        with engine.connect() as connection:
            user = _token_owner(connection, session_user, now, auth_id)
        if user is None:
            return _error(401, "Unauthorized")
        stream = hub.join(int(user[0]))
        if stream is None:
            response = _error(429, "Too many open streams")
            response.headers["Retry-After"] = "5"
            return response
        return Response(
            _frames(hub, stream),
            content_type="text/event-stream; charset=utf-8",
            headers=_HEADERS,
        )

    @app.get("/api/status")
    def status() -> Response:
        return jsonify(success=True)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", time=datetime.now(UTC).isoformat())

    return app
