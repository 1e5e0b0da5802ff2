"""The event log: every change a live stream shows, in the order the changes commit.

Each change to a thing appends one event in the same transaction as the change, so an
event exists exactly when its change does. A live stream reads the events after the
last id it saw (``events_after``); a client that reconnects with ``Last-Event-ID``
gets every one it missed, in order. Events are kept for ``EVENT_RETENTION`` seconds
(``prune_events``, every ``EVENT_PRUNE_INTERVAL`` seconds while the app serves).

That only holds if event ids grow in commit order, for every reader: a stream reads one
user's events, a process fanning events out to its streams reads everyone's after the
last id it saw. SQLite runs one writing transaction at a time, so they do. PostgreSQL
hands out an id when the row is inserted, not when it commits: a transaction that
inserted id 7 and commits after the one that inserted id 8 would let a reader see 8,
move past it, and never see 7. So on PostgreSQL a transaction that logs a change
(``logged_transaction``) first takes the log's advisory lock, held until it commits or
rolls back: logged changes commit one after another, in id order
(``tests/test_events.py``), as they do on SQLite. The lock is taken before any row
lock, so it never waits behind one: taken after the owner's row was locked, it
deadlocked with a deletion of the owner (``tests/test_races.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Protocol

from quart import Quart, current_app
from sqlalchemy import String, bindparam, delete, func, insert, select

from quart_app.data.base import utcnow
from quart_app.data.database import db
from quart_app.data.housekeeping import prune_periodically
from quart_app.data.models import Event
from quart_app.data.pool import Connection
from quart_app.data.statements import Query, Row

THING_CREATED = "thing.created"
THING_UPDATED = "thing.updated"
THING_DELETED = "thing.deleted"
THING_EVENTS = frozenset({THING_CREATED, THING_UPDATED, THING_DELETED})
# The admins' stream (events with no user_id): the admin API's user JSON.
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DELETED = "user.deleted"
USER_EVENTS = frozenset({USER_CREATED, USER_UPDATED, USER_DELETED})
# A user's sessions were revoked or their rights changed: no stream shows it, but each
# process checks that user's open streams again, and ends those no longer allowed.
ACCESS_CHANGED = "access.changed"

# Delivered to every LISTENing process when the transaction that sends it commits,
# and never when it rolls back (data/fanout.py). The payload is the sending process's
# (CommitListener.notification), so it can tell its own transactions apart.
NOTIFY_CHANNEL = "quart_app_events"
# The app's CommitListener, told as each logged transaction ends (data/fanout.py).
_COMMIT_LISTENER = "quart_app.events.commit_listener"

# The log's advisory lock: any constant that nothing else takes.
_LOG_LOCK_KEY = 0x71A7_E7E7
# The lock, and the notification its commit sends, in one round trip.
_LOG_LOCK = Query(
    select(
        func.pg_advisory_xact_lock(_LOG_LOCK_KEY).label("locked"),
        func.pg_notify(NOTIFY_CHANNEL, bindparam("notification", type_=String)).label("notified"),
    )
)
# created_at: the model's default, filled in when the event is appended.
_APPEND = Query(
    insert(Event).values(
        user_id=bindparam("user_id"), kind=bindparam("kind"), body=bindparam("body")
    )
)
# The newest event is kept, whatever its age: it tells how far the log has gone, so a
# client's Last-Event-ID can be judged even after everything else was pruned.
_NEWEST_ID = select(func.max(Event.id)).scalar_subquery()
_PRUNE = Query(delete(Event).where(Event.created_at < bindparam("cutoff"), Event.id < _NEWEST_ID))
_AFTER = Query(
    select(Event.id, Event.kind, Event.body)
    .where(Event.user_id == bindparam("user_id"), Event.id > bindparam("after"))
    .order_by(Event.id)
    .limit(bindparam("limit"))
)
_ADMINS_AFTER = Query(
    select(Event.id, Event.kind, Event.body)
    .where(Event.user_id.is_(None), Event.id > bindparam("after"))
    .order_by(Event.id)
    .limit(bindparam("limit"))
)
_EVERYONES_AFTER = Query(
    select(Event.id, Event.user_id, Event.kind, Event.body)
    .where(Event.id > bindparam("after"))
    .order_by(Event.id)
    .limit(bindparam("limit"))
)
_BOUNDS = Query(select(func.min(Event.id).label("oldest"), func.max(Event.id).label("newest")))


class CommitListener(Protocol):
    """Told of each logged transaction of an app (data/fanout.py's hub)."""

    def notification(self) -> str:
        """The payload of the NOTIFY the next logged transaction sends (PostgreSQL)."""
        ...

    def transaction_ended(self, notification: str, *, committed: bool) -> None:
        """The transaction that sends *notification* ended; *committed* if its commit
        was acknowledged. Otherwise it may have committed all the same (the answer to
        COMMIT was lost, or the request cancelled while waiting for it). Must not block.
        """
        ...


@asynccontextmanager
async def logged_transaction() -> AsyncIterator[Connection]:
    """A transaction for changes and the events that log them (``append_event``).

    However it ends, the app's ``CommitListener`` is told (``on_commit``).
    """
    listener: CommitListener | None = current_app.extensions.get(_COMMIT_LISTENER)
    notification = "" if listener is None else listener.notification()
    committed = False
    try:
        async with db.transaction() as connection:
            if connection.dialect == "postgresql":
                await connection.fetch(_LOG_LOCK, notification=notification)
            yield connection
        committed = True
    finally:
        if listener is not None:
            listener.transaction_ended(notification, committed=committed)


def on_commit(app: Quart, listener: CommitListener) -> None:
    """Tell *listener* of each logged transaction of *app*."""
    app.extensions[_COMMIT_LISTENER] = listener


async def append_event(
    connection: Connection, *, user_id: int | None, kind: str, body: Mapping[str, Any]
) -> None:
    """Log a change inside the ``logged_transaction`` that makes it.

    *user_id* names whose stream shows it; ``None`` is the admins' stream.
    """
    await connection.execute(_APPEND, user_id=user_id, kind=kind, body=json.dumps(body))


async def events_after(user_id: int | None, after: int, limit: int) -> list[Row]:
    """*user_id*'s events (``None``: the admins') with an id above *after*, oldest
    first, at most *limit*: ``id``, ``kind`` and ``body`` (JSON text)."""
    if user_id is None:
        return await db.fetch(_ADMINS_AFTER, after=after, limit=limit)
    return await db.fetch(_AFTER, user_id=user_id, after=after, limit=limit)


async def everyones_events_after(
    after: int, limit: int, *, connection: Connection | None = None
) -> list[Row]:
    """Every event with an id above *after*, oldest first, at most *limit*, with its
    ``user_id``; read on *connection* if given, else on a pooled one."""
    return await (connection or db).fetch(_EVERYONES_AFTER, after=after, limit=limit)


async def log_bounds(*, connection: Connection | None = None) -> tuple[int, int]:
    """The ids of the oldest and the newest event kept; (1, 0) while the log is empty."""
    rows = await (connection or db).fetch(_BOUNDS)
    if not rows or rows[0]["newest"] is None:
        return 1, 0
    return int(rows[0]["oldest"]), int(rows[0]["newest"])


async def prune_events(retention: float) -> int:
    """Delete the events older than *retention* seconds, but the newest; return how many."""
    return await db.execute(_PRUNE, cutoff=utcnow() - timedelta(seconds=retention))


def init_app(app: Quart) -> None:
    """Prune events past ``EVENT_RETENTION`` every ``EVENT_PRUNE_INTERVAL`` seconds (0: never)."""
    retention = float(app.config["EVENT_RETENTION"])
    prune_periodically(
        app,
        float(app.config["EVENT_PRUNE_INTERVAL"]),
        lambda: prune_events(retention),
        "events past their retention",
    )
