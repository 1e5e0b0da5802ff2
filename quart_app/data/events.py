"""The event log: every change to a user's things, in the order the changes commit.

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
from typing import Any

from quart import Quart
from sqlalchemy import bindparam, delete, func, insert, select

from quart_app.data.base import utcnow
from quart_app.data.database import db
from quart_app.data.housekeeping import prune_periodically
from quart_app.data.models import Event
from quart_app.data.pool import Connection
from quart_app.data.statements import Query, Row

THING_CREATED = "thing.created"
THING_UPDATED = "thing.updated"
THING_DELETED = "thing.deleted"

# The log's advisory lock: any constant that nothing else takes.
_LOG_LOCK_KEY = 0x71A7_E7E7
_LOG_LOCK = Query(select(func.pg_advisory_xact_lock(_LOG_LOCK_KEY).label("locked")))
# created_at: the model's default, filled in when the event is appended.
_APPEND = Query(
    insert(Event).values(
        user_id=bindparam("user_id"), kind=bindparam("kind"), body=bindparam("body")
    )
)
_PRUNE = Query(delete(Event).where(Event.created_at < bindparam("cutoff")))
_AFTER = Query(
    select(Event.id, Event.kind, Event.body)
    .where(Event.user_id == bindparam("user_id"), Event.id > bindparam("after"))
    .order_by(Event.id)
    .limit(bindparam("limit"))
)


@asynccontextmanager
async def logged_transaction() -> AsyncIterator[Connection]:
    """A transaction for changes and the events that log them (``append_event``)."""
    async with db.transaction() as connection:
        if connection.dialect == "postgresql":
            await connection.fetch(_LOG_LOCK)
        yield connection


async def append_event(
    connection: Connection, *, user_id: int, kind: str, body: Mapping[str, Any]
) -> None:
    """Log a change to *user_id*'s things, inside the ``logged_transaction`` that makes it."""
    await connection.execute(_APPEND, user_id=user_id, kind=kind, body=json.dumps(body))


async def events_after(user_id: int, after: int, limit: int) -> list[Row]:
    """*user_id*'s events with an id above *after*, oldest first, at most *limit*."""
    return await db.fetch(_AFTER, user_id=user_id, after=after, limit=limit)


async def prune_events(retention: float) -> int:
    """Delete the events older than *retention* seconds; return how many."""
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
