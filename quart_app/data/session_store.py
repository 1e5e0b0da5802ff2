"""Sign-in sessions in the database: start, look up, revoke, prune.

A session's id is an opaque random string held by the client (in the auth cookie or
as a bearer token); only its SHA-256 is stored, so a database leak grants nothing.
The row, not the client, decides whether the session is still valid, so a
revocation applies on the very next request on every instance.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from quart import Quart, current_app
from sqlalchemy import bindparam, delete, insert, or_, select, update

from quart_app.data.base import utcnow
from quart_app.data.database import db
from quart_app.data.events import ACCESS_CHANGED, append_event, logged_transaction
from quart_app.data.housekeeping import prune_periodically
from quart_app.data.models import ACCOUNT_COLUMNS, Account, AuthSession, SessionKind, User
from quart_app.data.pool import Connection
from quart_app.data.statements import Query


def hash_session_id(session_id: str) -> str:
    """The value stored for *session_id*: its SHA-256, hex-encoded."""
    return hashlib.sha256(session_id.encode()).hexdigest()


# The credential check: the live session and its active user in one round trip.
_SESSION_ACCOUNT = Query(
    select(*ACCOUNT_COLUMNS)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(
        AuthSession.id_hash == bindparam("id_hash"),
        AuthSession.kind == bindparam("kind"),
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > bindparam("now"),
        User.is_active.is_(True),
    )
)

# A session is stored only if the password that was checked is still the user's and
# the user is still active. FOR SHARE (PostgreSQL; SQLite runs one writer at a time)
# makes a concurrent password change wait for this insert, so the change's
# revocation sees the new session, or makes this insert see the new password.
_START = Query(
    insert(AuthSession).from_select(
        ["id_hash", "user_id", "kind", "created_at", "expires_at"],
        select(
            bindparam("id_hash", type_=AuthSession.id_hash.type),
            User.id,
            bindparam("kind", type_=AuthSession.kind.type),
            bindparam("now", type_=AuthSession.created_at.type),
            bindparam("expires_at", type_=AuthSession.expires_at.type),
        )
        .where(
            User.id == bindparam("user_id"),
            User.password_hash == bindparam("password_hash"),
            User.is_active.is_(True),
        )
        .with_for_update(read=True),
    )
)

_REVOKE_ONE = Query(
    update(AuthSession)
    .where(AuthSession.id_hash == bindparam("id_hash"), AuthSession.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
    .returning(AuthSession.user_id)
)

_REVOKE_ALL_BUT = Query(
    update(AuthSession)
    .where(
        AuthSession.user_id == bindparam("user_id"),
        AuthSession.revoked_at.is_(None),
        AuthSession.id_hash != bindparam("keep_hash"),
    )
    .values(revoked_at=bindparam("now"))
)

_PRUNE = Query(
    delete(AuthSession).where(
        or_(AuthSession.expires_at <= bindparam("now"), AuthSession.revoked_at.is_not(None))
    )
)


def session_lifetime() -> timedelta:
    """How long a sign-in lasts (``QUART_AUTH_DURATION`` seconds)."""
    return timedelta(seconds=int(current_app.config["QUART_AUTH_DURATION"]))


async def session_account(session_id: str, kind: SessionKind) -> Account | None:
    """The active user of the live session *session_id*, else ``None``."""
    row = await db.fetchrow(
        _SESSION_ACCOUNT, id_hash=hash_session_id(session_id), kind=kind.value, now=utcnow()
    )
    return None if row is None else Account.from_row(row)


async def start_session(
    account: Account, kind: SessionKind, password_hash: str
) -> tuple[str, datetime] | None:
    """Store a new session for *account*; return its secret id and expiry.

    *password_hash* is the hash the password was checked against; ``None`` comes back
    when it is no longer the user's (changed meanwhile) or the user was deactivated.
    """
    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + session_lifetime()
    stored = await db.execute(
        _START,
        id_hash=hash_session_id(session_id),
        kind=kind.value,
        now=now,
        expires_at=expires_at,
        user_id=account.id,
        password_hash=password_hash,
    )
    return (session_id, expires_at) if stored else None


async def revoke_session(session_id: str) -> None:
    """End one session, wherever it is used next, its open live streams included."""
    async with logged_transaction() as connection:
        row = await connection.fetchrow(
            _REVOKE_ONE, id_hash=hash_session_id(session_id), now=utcnow()
        )
        if row is not None:
            await append_event(connection, user_id=row["user_id"], kind=ACCESS_CHANGED, body={})


async def revoke_user_sessions(
    connection: Connection, user_id: int, *, keep: str | None = None
) -> None:
    """End every session of a user but *keep*, and their open live streams, in the
    caller's ``logged_transaction``."""
    await connection.execute(
        _REVOKE_ALL_BUT,
        user_id=user_id,
        keep_hash=hash_session_id(keep) if keep is not None else "",
        now=utcnow(),
    )
    await append_event(connection, user_id=user_id, kind=ACCESS_CHANGED, body={})


async def prune_sessions() -> int:
    """Delete expired and revoked sessions; return how many.

    A deleted row refuses its id exactly as a revoked or expired one does.
    """
    return await db.execute(_PRUNE, now=utcnow())


def init_app(app: Quart) -> None:
    """Prune sessions every ``SESSION_PRUNE_INTERVAL`` seconds while *app* serves (0: never)."""
    prune_periodically(
        app,
        float(app.config["SESSION_PRUNE_INTERVAL"]),
        prune_sessions,
        "expired or revoked sessions",
    )
