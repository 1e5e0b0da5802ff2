"""Scenario F's reference: quart_app's ``GET /api/things`` written the Flask way.

Flask and sync SQLAlchemy, served by gunicorn, on quart_app's own database: the same
bearer tokens (quart-auth's itsdangerous format), the same two queries and the same
JSON. Two variants answer alike:

- ``create_app()``, as first written: SQLAlchemy Core expressions built per request
  from quart_app's models, timestamps read through the models' TypeDecorator;
- ``create_tuned_app()``, the stronger reference: ``text()`` statements built once at
  import, run with bound parameters on autocommit connections from SQLAlchemy's pool,
  only the columns the answer needs, timestamps converted here.

``BENCH_SECRET_KEY`` is quart_app's ``QUART_SECRET_KEY``; ``BENCH_DATABASE_URL`` is
quart_app's database URL, async or sync.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from flask import Flask, Response, jsonify, request
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import Connection, Engine, Row, TextClause, create_engine, func, select, text

from quart_app.data.models import ACCOUNT_COLUMNS, AuthSession, Thing, User

# quart-auth's token: its default salt, SHA-512 signatures, and quart_app's lifetime.
AUTH_SALT = "quart auth salt"
AUTH_DURATION = 7 * 24 * 60 * 60
WWW_AUTHENTICATE = 'Bearer realm="quart_app"'
_INTEGER = re.compile(r"[+-]?\d+")

# The columns quart_app's ThingOut shows, from quart_app's own models: one schema.
THING_COLUMNS = (Thing.id, Thing.title, Thing.done, Thing.created_at, Thing.updated_at)
# Query string: name -> (lowest, highest, default), as quart_app's PageQuery.
PAGE_ARGS = {"limit": (1, 100, 20), "offset": (0, 1_000_000_000, 0)}


def sync_database_url(url: str) -> str:
    """quart_app's async URL as a sync driver's: sqlite's own, psycopg for PostgreSQL."""
    url = url.replace("sqlite+aiosqlite:", "sqlite:", 1)
    return re.sub(r"^postgres(ql)?(\+asyncpg)?:", "postgresql+psycopg:", url)


def iso(value: datetime) -> str:
    """*value* as pydantic's ``mode="json"`` writes an aware UTC datetime."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


def _page_args() -> tuple[int, int] | dict[str, str]:
    """``(limit, offset)`` from the query string, or pydantic's messages for invalid fields."""
    fields = {
        name: "Extra inputs are not permitted" for name in request.args if name not in PAGE_ARGS
    }
    values: dict[str, int] = {}
    for name, (low, high, default) in PAGE_ARGS.items():
        raw = request.args.get(name)
        if raw is None:
            values[name] = default
        elif not _INTEGER.fullmatch(raw.strip()):
            fields[name] = "Input should be a valid integer, unable to parse string as an integer"
        elif int(raw) < low:
            fields[name] = f"Input should be greater than or equal to {low}"
        elif int(raw) > high:
            fields[name] = f"Input should be less than or equal to {high}"
        else:
            values[name] = int(raw)
    return fields or (values["limit"], values["offset"])


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        os.environ["BENCH_SECRET_KEY"], AUTH_SALT, signer_kwargs={"digest_method": hashlib.sha512}
    )


def _engine(**options: Any) -> Engine:
    # No pre-ping: quart_app does not ping either, so both make the same round trips.
    return create_engine(sync_database_url(os.environ["BENCH_DATABASE_URL"]), **options)


def _session_id(serializer: URLSafeTimedSerializer) -> str | None:
    """The session id in the request's bearer token, or None."""
    raw = request.headers.get("Authorization")
    if raw is None or raw[:6].lower() != "bearer":
        return None
    try:
        loaded = serializer.loads(raw[6:].strip(), max_age=AUTH_DURATION)
    except BadData:
        return None
    return loaded if isinstance(loaded, str) else None


# One thing in the answer, as quart_app's ThingOut writes it.
Item = dict[str, Any]


def _page(items: list[Item], total: int, limit: int, offset: int) -> Response:
    response = jsonify(items=items, total=total, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return response


# The list's view: the bearer's session id and the page asked for -> the answer.
ListPage = Callable[[str, int, int], Response]


def _flask_app(list_page: ListPage) -> Flask:
    """The Flask app both variants share: the token and query checks, /healthz."""
    app = Flask(__name__)
    serializer = _serializer()

    @app.get("/api/things")
    def list_things() -> Response:
        auth_id = _session_id(serializer)
        if auth_id is None:
            return _error(401, "Unauthorized")
        page = _page_args()
        if isinstance(page, dict):
            return _error(422, "Invalid input", fields=page)
        return list_page(auth_id, *page)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app


def create_app() -> Flask:
    """The Flask app as first written; its engine is made here, so in each gunicorn worker."""
    engine = _engine()

    def list_page(auth_id: str, limit: int, offset: int) -> Response:
        now = datetime.now(UTC)
        with engine.connect() as connection:
            user = connection.execute(
                select(*ACCOUNT_COLUMNS)
                .join(AuthSession, AuthSession.user_id == User.id)
                .where(
                    AuthSession.id_hash == hashlib.sha256(auth_id.encode()).hexdigest(),
                    AuthSession.kind == "token",
                    AuthSession.revoked_at.is_(None),
                    AuthSession.expires_at > now,
                    User.is_active.is_(True),
                )
            ).first()
            if user is None:
                return _error(401, "Unauthorized")
            rows = connection.execute(
                select(*THING_COLUMNS, func.count().over().label("total"))
                .where(Thing.owner_id == user.id)
                .order_by(Thing.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            if rows:
                total = rows[0].total
            else:  # past the last page no row carries the total
                count = select(func.count()).select_from(Thing)
                total = connection.execute(count.where(Thing.owner_id == user.id)).scalar_one()
        items = [
            {
                "id": row.id,
                "title": row.title,
                "done": row.done,
                "created_at": iso(row.created_at),
                "updated_at": iso(row.updated_at),
            }
            for row in rows
        ]
        return _page(items, total, limit, offset)

    return _flask_app(list_page)


# --- the tuned variant ------------------------------------------------------------

# The statements SQLAlchemy compiles the variant above to, written once as text(): the
# token's live session and active user (only the user's id: all the list needs), the
# page with its total as a window count, and the count alone past the last page. Only
# the literal for "true" differs between the dialects.
_SESSION_USER_SQL = (
    "SELECT users.id FROM users JOIN auth_sessions ON auth_sessions.user_id = users.id "
    "WHERE auth_sessions.id_hash = :id_hash AND auth_sessions.kind = :kind "
    "AND auth_sessions.revoked_at IS NULL AND auth_sessions.expires_at > :now "
    "AND users.is_active IS {true}"
)
SESSION_USER = {
    "sqlite": text(_SESSION_USER_SQL.format(true="1")),
    "postgresql": text(_SESSION_USER_SQL.format(true="true")),
}
THINGS_PAGE = text(
    "SELECT things.id, things.title, things.done, things.created_at, things.updated_at, "
    "count(*) OVER () AS total FROM things WHERE things.owner_id = :owner_id "
    "ORDER BY things.id DESC LIMIT :limit OFFSET :offset"
)
THINGS_COUNT = text("SELECT count(*) FROM things WHERE things.owner_id = :owner_id")
# SQLAlchemy's SQLite DateTime format: what quart_app stores, naive UTC.
SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_now() -> str:
    return datetime.now(UTC).strftime(SQLITE_TIMESTAMP)


def _sqlite_iso(value: str) -> str:
    # Naive UTC text; the answer's format is iso()'s, "Z" for UTC.
    return datetime.fromisoformat(value).isoformat() + "Z"


def _sqlite_thing(row: Sequence[Any]) -> Item:
    return {
        "id": row[0],
        "title": row[1],
        "done": bool(row[2]),  # stored as 0 or 1
        "created_at": _sqlite_iso(row[3]),
        "updated_at": _sqlite_iso(row[4]),
    }


def _postgresql_thing(row: Sequence[Any]) -> Item:
    # psycopg returns aware datetimes, in the session's time zone.
    return {
        "id": row[0],
        "title": row[1],
        "done": row[2],
        "created_at": iso(row[3]),
        "updated_at": iso(row[4]),
    }


# Per dialect: the session lookup, the "now" it compares with, and a page row's JSON.
_DIALECTS: dict[str, tuple[TextClause, Callable[[], object], Callable[[Sequence[Any]], Item]]] = {
    "sqlite": (SESSION_USER["sqlite"], _sqlite_now, _sqlite_thing),
    "postgresql": (SESSION_USER["postgresql"], partial(datetime.now, UTC), _postgresql_thing),
}


def _token_owner(
    connection: Connection, session_user: TextClause, now: Callable[[], object], auth_id: str
) -> Row[Any] | None:
    """The row (the user's id first) of the live token session *auth_id*, or ``None``."""
    id_hash = hashlib.sha256(auth_id.encode()).hexdigest()
    params = {"id_hash": id_hash, "kind": "token", "now": now()}
    return connection.execute(session_user, params).first()


def create_tuned_app() -> Flask:
    """The stronger Flask reference: statements built once, no TypeDecorator.

    Reads on autocommit connections, as quart_app's are: on PostgreSQL neither a BEGIN
    before the first query nor a ROLLBACK when the pool takes the connection back.
    """
    engine = _engine(isolation_level="AUTOCOMMIT")
    session_user, now, thing = _DIALECTS[engine.dialect.name]

    def list_page(auth_id: str, limit: int, offset: int) -> Response:
        with engine.connect() as connection:
            user = _token_owner(connection, session_user, now, auth_id)
            if user is None:
                return _error(401, "Unauthorized")
            owner = {"owner_id": user[0]}
            page = {**owner, "limit": limit, "offset": offset}
            rows = connection.execute(THINGS_PAGE, page).all()
            # Past the last page no row carries the total.
            total = rows[0][5] if rows else connection.execute(THINGS_COUNT, owner).scalar_one()
        return _page([thing(row) for row in rows], total, limit, offset)

    return _flask_app(list_page)
