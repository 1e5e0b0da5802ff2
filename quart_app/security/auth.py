"""The quart-auth adapter: who the request's credentials name, as ``current_user``.

The auth id quart-auth signs into the cookie or bearer token is an opaque random
session id. The session row, not the signature, decides whether it is still valid,
so logout, revocation, deactivation and demotion apply on the next request on
every instance that shares the database.
"""

from __future__ import annotations

import time
from typing import cast

import quart_auth
from quart import Quart, Response, current_app, request
from quart.globals import request_ctx
from quart_auth import Action, AuthUser, QuartAuth

from quart_app.data.models import Account, SessionKind
from quart_app.data.session_store import session_account
from quart_app.upstream.quart_auth import user_untouched, verify_token

EXTENSION_KEY = "quart_app.auth"


class SessionUser(AuthUser):
    """quart-auth's user, backed by a session row and the user it belongs to.

    ``load()`` runs once per request, before the view (see ``AppAuth``), so views can
    read ``current_user.user_type`` synchronously, as the Flask original does.
    """

    def __init__(
        self,
        auth_id: str | None,
        action: Action = Action.PASS,
        *,
        kind: SessionKind = SessionKind.COOKIE,
    ) -> None:
        super().__init__(auth_id, action)
        self.kind = kind
        self.account: Account | None = None
        self._loaded = False

    async def load(self) -> None:
        """Look up the live session and its active user: one query, at most once."""
        if self._loaded:
            return
        self._loaded = True
        if self.auth_id is None:
            return
        self.account = await session_account(self.auth_id, self.kind)

    def attach(self, account: Account) -> None:
        """Mark this freshly signed-in session as belonging to *account*."""
        self.account = account
        self._loaded = True

    @property
    async def is_authenticated(self) -> bool:
        """True when the credentials name a live session of an active user."""
        await self.load()
        return self.account is not None

    @property
    def is_admin(self) -> bool:
        """True for an active admin (after ``load()``)."""
        return self.account is not None and self.account.is_admin

    @property
    def user_type(self) -> str | None:
        """``"admin"`` or ``"user"``; ``None`` when anonymous."""
        return self.account.user_type if self.account else None

    @property
    def username(self) -> str | None:
        """The signed-in user's name; ``None`` when anonymous."""
        return self.account.username if self.account else None


class AppAuth(QuartAuth):
    """quart-auth accepting a bearer token or the auth cookie on the same routes.

    A request carrying an ``Authorization`` header is judged by that header alone,
    so a bad token is refused instead of silently falling back to a cookie.
    """

    user_class = SessionUser
    # Enough for every client of a busy instance; past it, the oldest entry makes room.
    verified_tokens_kept = 4096

    def __init__(self, app: Quart) -> None:
        # Tokens whose signature checked out, with the time they were signed (load_token).
        self.verified_tokens: dict[str, tuple[str, float]] = {}
        super().__init__(app)

    def init_app(self, app: Quart) -> None:
        """Bind to *app* (its ``QUART_AUTH_*`` settings) and load the user before every view."""
        super().init_app(app)
        app.extensions[EXTENSION_KEY] = self
        app.before_request(self._load_current_user)

    async def after_request(self, response: Response) -> Response:
        """quart-auth's cookie writing, skipped when nothing touched the user."""
        # Signing in or out goes through load_user, login_user or logout_user, which
        # all leave the user on g; a request without it has no cookie to change.
        if user_untouched(self):
            return response
        return await super().after_request(response)

    def load_token(self, token: str, app: Quart | None = None) -> str | None:
        """The auth id signed into *token*, or ``None``: quart-auth's check, remembered.

        Checking a signature takes about 130 Python calls (3% of an authenticated read,
        counted in instructions), and a client sends the same token on every request.
        Only tokens that checked out are remembered, with the time they were signed, so
        expiry is judged as quart-auth judges it; the session row still decides, on
        every request, whether the session is live. The check itself is a copy of
        quart-auth's (``quart_app.upstream.quart_auth.verify_token``).
        """
        if app is None:
            app = current_app
        verified = self.verified_tokens
        found = verified.get(token)
        if found is None:
            found = verify_token(self, token, app)
            if found is None:
                return None
            if len(verified) >= self.verified_tokens_kept:
                del verified[next(iter(verified))]
            verified[token] = found
        auth_id, signed_at = found
        # Whole seconds, as itsdangerous counts them.
        age = int(time.time()) - signed_at
        if age < 0 or (self.duration is not None and age > self.duration):
            del verified[token]
            return None
        return auth_id

    def resolve_user(self) -> SessionUser:
        """Build the request's user from its bearer token or, failing that, its cookie."""
        if "Authorization" in request.headers:
            return SessionUser(self.load_bearer(), kind=SessionKind.TOKEN)
        return SessionUser(self.load_cookie(), kind=SessionKind.COOKIE)

    async def _load_current_user(self) -> None:
        # The request itself, not its proxy: each attribute read through the proxy is a
        # context-variable lookup and three calls.
        current = request_ctx.request
        # Unknown paths and methods are refused before any database work.
        if current.routing_exception is not None or current.endpoint == "static":
            return
        # Without credentials there is nothing to look up; quart-auth still resolves an
        # anonymous current_user on demand. Most requests carry none, so the raw header
        # names (lower-case in ASGI) are scanned: Werkzeug answers a lookup of a missing
        # header by raising and catching an exception.
        names = {name for name, _ in current.scope["headers"]}
        if b"authorization" in names or (
            b"cookie" in names and self.cookie_name in current.cookies
        ):
            await current_user.load()


current_user: SessionUser = cast(SessionUser, quart_auth.current_user)


def app_auth(app: Quart | None = None) -> AppAuth:
    """The quart-auth extension of *app* (default: the current app)."""
    extension: AppAuth = (app or current_app).extensions[EXTENSION_KEY]
    return extension


def init_app(app: Quart) -> None:
    """Give *app* its own quart-auth extension (see ``AppAuth``)."""
    AppAuth(app)
