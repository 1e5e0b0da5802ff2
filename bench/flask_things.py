"""Scenario F's reference: quart_app's ``GET /api/things`` written the Flask way.

Flask and sync SQLAlchemy Core, served by gunicorn, on quart_app's own database: the
same bearer tokens (quart-auth's itsdangerous format), the same two queries and the
same JSON. ``BENCH_SECRET_KEY`` is quart_app's ``QUART_SECRET_KEY``;
``BENCH_DATABASE_URL`` is quart_app's database URL, async or sync.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import create_engine, func, select

from quart_app.models import ACCOUNT_COLUMNS, AuthSession, Thing, User

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


def create_app() -> Flask:
    """The Flask app; its engine is made here, so in each gunicorn worker."""
    app = Flask(__name__)
    url = sync_database_url(os.environ["BENCH_DATABASE_URL"])
    # No pre-ping: quart_app does not ping either, so both make the same round trips.
    engine = create_engine(url)
    serializer = URLSafeTimedSerializer(
        os.environ["BENCH_SECRET_KEY"], AUTH_SALT, signer_kwargs={"digest_method": hashlib.sha512}
    )

    def session_id() -> str | None:
        raw = request.headers.get("Authorization")
        if raw is None or raw[:6].lower() != "bearer":
            return None
        try:
            loaded = serializer.loads(raw[6:].strip(), max_age=AUTH_DURATION)
        except BadData:
            return None
        return loaded if isinstance(loaded, str) else None

    @app.get("/api/things")
    def list_things() -> Response:
        auth_id = session_id()
        if auth_id is None:
            return _error(401, "Unauthorized")
        page = _page_args()
        if isinstance(page, dict):
            return _error(422, "Invalid input", fields=page)
        limit, offset = page
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
        response = jsonify(items=items, total=total, limit=limit, offset=offset)
        response.headers["X-Total-Count"] = str(total)
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
