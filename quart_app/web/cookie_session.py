"""Quart's signed cookie session, opened without cost when the request has none.

Flash messages and the form CSRF token live in this session. Most requests (every
API call, every anonymous page view) carry no session cookie; Quart would still
build a signing serializer for each of them, which is a measurable part of a
request's cost (see bench/analysis.md).
"""

from __future__ import annotations

from quart import Quart, Response
from quart.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from quart.wrappers import BaseRequestWebsocket
from werkzeug.wrappers import Response as WerkzeugResponse


class CookieSessionInterface(SecureCookieSessionInterface):
    """Quart's session interface, doing nothing for requests that never use it."""

    async def open_session(
        self, app: Quart, request: BaseRequestWebsocket
    ) -> SecureCookieSession | None:
        """An empty session for a request without the cookie; else Quart's own."""
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return await super().open_session(app, request)

    async def save_session(
        self, app: Quart, session: SessionMixin, response: Response | WerkzeugResponse | None
    ) -> None:
        """Nothing to do for a session that came empty and was never read or written."""
        # Quart reads seven cookie settings before reaching the same conclusion.
        if not session and not session.modified and not session.accessed:
            return
        await super().save_session(app, session, response)


def init_app(app: Quart) -> None:
    """Give *app* the cookie session."""
    app.session_interface = CookieSessionInterface()
