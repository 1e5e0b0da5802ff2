"""The seed's Flask snippets as a runnable Flask app, to compare the Quart port against.

Only what the seed shows is here; an anonymous visitor stands in for Flask-Login's
``current_user``, since the seed never says where users come from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, flash, jsonify, make_response, redirect, request, url_for
from flask.typing import ResponseReturnValue

current_user: Any = None  # the seed's check starts with `if current_user and ...`


def _(text: str) -> str:
    return text


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
            return redirect(url_for("public_index"))

    return decorated


def create_seed_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "parity-only"

    @app.route("/")
    def public_index() -> str:
        return "<h1>quart_app</h1>"

    @app.route("/api/status")
    def status() -> ResponseReturnValue:
        resp = jsonify(success=True)
        resp.status_code = 200
        return resp

    @app.route("/do_thing")
    def do_thing() -> ResponseReturnValue:
        data = {"message": "Done", "code": "SUCCESS"}
        return make_response(jsonify(data), 201)

    @app.route("/readyz")
    def readyz() -> ResponseReturnValue:
        return json.dumps({"status": "ready"}), 200, {"Content-Type": "application/json"}

    @app.route("/misspelt")
    def misspelt() -> ResponseReturnValue:
        return json.dumps({"success": True}), 200, {"ContentType": "application/json"}

    @app.route("/api/admin/users")
    @admin_required
    def admin_users() -> ResponseReturnValue:
        return jsonify(users=[])

    @app.route("/admin")
    @admin_required
    def admin() -> ResponseReturnValue:
        return "admin"

    return app
