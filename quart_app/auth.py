"""Sign-in sessions on top of quart-auth, ``current_user``, and ``admin_required``.

The auth id quart-auth signs into the cookie or bearer token is an opaque random
session id. The session row, not the signature, decides whether it is still valid,
so logout, revocation, deactivation and demotion apply on the next request on
every instance that shares the database.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import ParamSpec, cast

import quart_auth
from quart import Quart, current_app, flash, jsonify, redirect, request, url_for
from quart.typing import ResponseReturnValue
from quart_auth import Action, AuthUser, QuartAuth, login_user, logout_user
from sqlalchemy import select, update

from .db import db, utcnow
from .errors import WWW_AUTHENTICATE, is_api_request
from .i18n import _
from .models import AuthSession, SessionKind, User
from .safe_redirects import login_url_for_current_request

P = ParamSpec("P")


def hash_session_id(session_id: str) -> str:
    """The value stored for *session_id*: its SHA-256, hex-encoded."""
    return hashlib.sha256(session_id.encode()).hexdigest()


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
        self.account: User | None = None
        self._loaded = False

    async def load(self) -> None:
        """Look up the live session and its active user: one query, at most once."""
        if self._loaded:
            return
        self._loaded = True
        if self.auth_id is None:
            return
        await db.admit()
        statement = (
            select(User)
            .join(AuthSession, AuthSession.user_id == User.id)
            .where(
                AuthSession.id_hash == hash_session_id(self.auth_id),
                AuthSession.kind == self.kind.value,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > utcnow(),
                User.is_active.is_(True),
            )
        )
        self.account = (await db.session.execute(statement)).scalar_one_or_none()

    def attach(self, account: User) -> None:
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

    _SETTINGS = (
        "attribute_name",
        "cookie_domain",
        "cookie_name",
        "cookie_path",
        "cookie_http_only",
        "cookie_samesite",
        "cookie_secure",
        "duration",
        "mode",
        "salt",
    )

    def init_app(self, app: Quart) -> None:
        """Bind to *app* and load the current user before every view."""
        # QuartAuth only reads config into attributes that are still None, so a
        # module-level instance would keep the first app's settings for every later app.
        for name in self._SETTINGS:
            setattr(self, name, None)
        super().init_app(app)
        app.before_request(self._load_current_user)

    def resolve_user(self) -> SessionUser:
        """Build the request's user from its bearer token or, failing that, its cookie."""
        if "Authorization" in request.headers:
            return SessionUser(self.load_bearer(), kind=SessionKind.TOKEN)
        return SessionUser(self.load_cookie(), kind=SessionKind.COOKIE)

    async def _load_current_user(self) -> None:
        # Without credentials there is nothing to look up; quart-auth still resolves an
        # anonymous current_user on demand.
        if request.endpoint == "static" or not (
            "Authorization" in request.headers or self.cookie_name in request.cookies
        ):
            return
        await current_user.load()


auth = AppAuth()
current_user: SessionUser = cast(SessionUser, quart_auth.current_user)


def session_lifetime() -> timedelta:
    """How long a sign-in lasts (``QUART_AUTH_DURATION`` seconds)."""
    return timedelta(seconds=int(current_app.config["AUTH_DURATION"]))


async def start_session(account: User, kind: SessionKind) -> tuple[str, datetime]:
    """Store a new session for *account*; return its secret id and expiry."""
    session_id = secrets.token_urlsafe(32)
    expires_at = utcnow() + session_lifetime()
    db.session.add(
        AuthSession(
            id_hash=hash_session_id(session_id),
            user_id=account.id,
            kind=kind.value,
            expires_at=expires_at,
        )
    )
    await db.session.commit()
    return session_id, expires_at


async def revoke_session(session_id: str) -> None:
    """End one session, wherever it is used next."""
    await db.session.execute(
        update(AuthSession)
        .where(AuthSession.id_hash == hash_session_id(session_id))
        .where(AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await db.session.commit()


async def revoke_user_sessions(user_id: int, *, keep: str | None = None) -> None:
    """End every session of a user, except the one whose id is *keep*."""
    statement = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id)
        .where(AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if keep is not None:
        statement = statement.where(AuthSession.id_hash != hash_session_id(keep))
    await db.session.execute(statement)
    await db.session.commit()


async def sign_in(account: User) -> None:
    """Start a cookie session for *account*, with a new id every time.

    The previous cookie session of this browser is revoked, so an id planted before
    sign-in (session fixation) is worthless after it.
    """
    if current_user.auth_id is not None and current_user.kind is SessionKind.COOKIE:
        await revoke_session(current_user.auth_id)
    session_id, _expires = await start_session(account, SessionKind.COOKIE)
    user = SessionUser(session_id)
    user.attach(account)
    # remember=True gives the cookie a Max-Age equal to the server-side lifetime.
    login_user(user, remember=True)


async def sign_out() -> None:
    """Revoke the current session (cookie or token) and clear the auth cookie."""
    if current_user.auth_id is not None:
        await revoke_session(current_user.auth_id)
    logout_user()


async def issue_token(account: User) -> tuple[str, datetime]:
    """Start a bearer-token session for *account*; return the token and its expiry."""
    session_id, expires_at = await start_session(account, SessionKind.TOKEN)
    return auth.dump_token(session_id), expires_at


def admin_required(
    view: Callable[P, ResponseReturnValue | Awaitable[ResponseReturnValue]],
) -> Callable[P, Awaitable[ResponseReturnValue]]:
    """Let only admins through; everyone else gets the answer their client can use.

    Under ``/api/``: 401 JSON with ``WWW-Authenticate`` when not signed in (or the
    credentials are bad or revoked), 403 JSON when signed in but not an admin.
    Elsewhere: a flashed message and a redirect, to the sign-in page (with ``next``)
    or to the public index. Works on ``async def`` and plain ``def`` views.
    """

    @wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        await current_user.load()
        if current_user.is_admin:
            return cast(ResponseReturnValue, await current_app.ensure_async(view)(*args, **kwargs))
        signed_in = current_user.account is not None
        if is_api_request():
            if not signed_in:
                return (
                    jsonify({"error": "Admin access is required"}),
                    401,
                    {"WWW-Authenticate": WWW_AUTHENTICATE},
                )
            return jsonify({"error": "Admin access is required"}), 403

        await flash(_("Admin access required"), "error")
        if not signed_in:
            return redirect(login_url_for_current_request())
        return redirect(url_for("main.public_index"))

    return wrapper
