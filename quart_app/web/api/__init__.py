"""The JSON API under ``/api/``, one child blueprint per resource."""

from __future__ import annotations

from quart import Blueprint

from quart_app.web.api import admin_users, sessions, streams, things

bp = Blueprint("api", __name__, url_prefix="/api")
bp.register_blueprint(sessions.bp)
bp.register_blueprint(things.bp)
bp.register_blueprint(admin_users.bp)
bp.register_blueprint(streams.bp)
