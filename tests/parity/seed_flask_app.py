"""The seed's Flask snippets as a runnable Flask app, to compare the Quart port against.

What the seed shows is kept as it is: its three JSON idioms and its ``admin_required``,
which reads Flask-Login's ``current_user``. What the seed leaves out, it gets in the
plainest Flask way: Flask-Login over an in-memory SQLite ``users`` table, a form login view,
and ``admin_required`` on the two routes the port guards with it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, flash, jsonify, make_response, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user
from werkzeug.security import check_password_hash, generate_password_hash

SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    user_type TEXT NOT NULL,
    is_active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""


def _(text: str) -> str:
    return text


class User(UserMixin):  # type: ignore[misc]  # Flask-Login ships no type information
    def __init__(self, row: sqlite3.Row) -> None:
        self.id = row["id"]
        self.username = row["username"]
        self.user_type = row["user_type"]
        self.active = bool(row["is_active"])
        self.created_at = row["created_at"]
        self.updated_at = row["updated_at"]

    @property
    def is_active(self) -> bool:
        return self.active

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "user_type": self.user_type,
            "is_active": self.active,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def admin_required(f: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    @wraps(f)
    def decorated(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if (
            current_user
            and hasattr(current_user, "user_type")
            and current_user.user_type == "admin"
        ):
            return f(*args, **kwargs)
        else:
            assert request.url_rule is not None
            if "/api/" in request.url_rule.rule:
                return jsonify({"error": "Admin access is required"}), 401

            flash(_("Admin access required"))
            return redirect(url_for("main.public_index"))

    return decorated


class UserTable:
    """The users, in an in-memory SQLite database."""

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:")
        self.connection.row_factory = sqlite3.Row
        self.connection.execute(SCHEMA)

    def close(self) -> None:
        self.connection.close()

    def add(self, username: str, password: str, user_type: str) -> None:
        """Store a user, as the port's ``create-user`` command would."""
        now = datetime.now(UTC).isoformat()
        with self.connection:
            self.connection.execute(
                "INSERT INTO users (username, password_hash, user_type, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (username, generate_password_hash(password), user_type, now, now),
            )

    def get(self, user_id: str) -> User | None:
        row = self.connection.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return User(row) if row else None

    def check(self, username: str, password: str) -> User | None:
        """The user *username* names, if *password* is theirs."""
        row = self.connection.execute(
            "SELECT * FROM users WHERE username = ?", (username,)
        ).fetchone()
        if row is None or not check_password_hash(row["password_hash"], password):
            return None
        return User(row)

    def page(self, limit: int, offset: int) -> tuple[list[User], int]:
        rows = self.connection.execute(
            "SELECT * FROM users ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        (total,) = self.connection.execute("SELECT count(*) FROM users").fetchone()
        return [User(row) for row in rows], total


def create_seed_app(users: UserTable | None = None) -> Flask:
    """The seed app; with no *users* (as bench/run.py serves it), nobody can sign in."""
    users = users if users is not None else UserTable()
    app = Flask(__name__)
    app.secret_key = "parity-only"
    login_manager = LoginManager(app)
    login_manager.user_loader(users.get)

    main = Blueprint("main", __name__)

    @main.route("/")
    def public_index() -> str:
        return "<h1>quart_app</h1>"

    @main.route("/login", methods=["POST"])
    def login() -> ResponseReturnValue:
        user = users.check(request.form["username"], request.form["password"])
        if user is None:
            return "Invalid username or password", 200
        login_user(user)
        return redirect(url_for("main.public_index"))

    @main.route("/admin")
    @admin_required
    def admin() -> ResponseReturnValue:
        return "admin"

    app.register_blueprint(main)

    @app.route("/api/status")
    def status() -> ResponseReturnValue:
        resp = jsonify(success=True)
        resp.status_code = 200
        return resp

    @app.route("/do_thing")
    def do_thing() -> ResponseReturnValue:
        data = {"message": "Done", "code": "SUCCESS"}
        return make_response(jsonify(data), 201)

    @app.route("/misspelt")
    def misspelt() -> ResponseReturnValue:
        return json.dumps({"success": True}), 200, {"ContentType": "application/json"}

    @app.route("/api/admin/users")
    @admin_required
    def admin_users() -> ResponseReturnValue:
        # The port's first page: 20 users, oldest first.
        page, total = users.page(limit=20, offset=0)
        items = [user.as_json() for user in page]
        return jsonify(items=items, total=total, limit=20, offset=0)

    return app
