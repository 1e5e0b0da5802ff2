"""Sign-in sessions on top of quart-auth, ``current_user``, and ``admin_required``.

The auth id quart-auth signs into the cookie or bearer token is an opaque random
session id. The session row, not the signature, decides whether it is still valid,
so logout, revocation, deactivation and demotion apply on the next request on
every instance that shares the database.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import wraps
from typing import ParamSpec, cast

import quart_auth
from itsdangerous import BadSignature
from quart import Quart, Response, current_app, flash, g, jsonify, redirect, request, url_for
from quart.typing import ResponseReturnValue
from quart_auth import Action, AuthUser, QuartAuth, login_user, logout_user
from quart_babel import _

from .accounts import VerifiedAccount
from .errors import WWW_AUTHENTICATE, is_api_request
from .models import Account, SessionKind
from .safe_redirects import login_url_for_current_request
from .session_store import revoke_session, session_account, start_session

P = ParamSpec("P")

# Where each app remembers the tokens whose signature checked out (see load_token).
VERIFIED_TOKENS = "quart_app.verified_tokens"


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

    async def after_request(self, response: Response) -> Response:
        """quart-auth's cookie writing, skipped when nothing touched the user."""
        # Signing in or out goes through load_user, login_user or logout_user, which
        # all leave the user on g; a request without it has no cookie to change.
        if self.attribute_name not in g:
            return response
        return await super().after_request(response)

    def load_token(self, token: str, app: Quart | None = None) -> str | None:
        """The auth id signed into *token*, or ``None``: quart-auth's check, remembered.

        Checking a signature takes about 130 Python calls (3% of an authenticated read,
        counted in instructions), and a client sends the same token on every request.
        Only tokens that checked out are remembered, with the time they were signed, so
        expiry is judged as quart-auth judges it; the session row still decides, on
        every request, whether the session is live.
        """
        if app is None:
            app = cast(Quart, current_app._get_current_object())  # type: ignore[attr-defined]
        verified: dict[str, tuple[str, float]] = app.extensions.setdefault(VERIFIED_TOKENS, {})
        found = verified.get(token)
        if found is None:
            keys = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key]
            assert self.salt is not None  # set by init_app
            try:
                auth_id, signed_at = self.serializer_class(keys, self.salt).loads(
                    token, max_age=self.duration, return_timestamp=True
                )
            except BadSignature:  # SignatureExpired is one
                return None
            if len(verified) >= self.verified_tokens_kept:
                del verified[next(iter(verified))]
            found = verified[token] = (auth_id, signed_at.timestamp())
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
        # Unknown paths and methods are refused before any database work.
        if request.routing_exception is not None or request.endpoint == "static":
            return
        # Without credentials there is nothing to look up; quart-auth still resolves an
        # anonymous current_user on demand. Most requests carry none, so the raw header
        # names (lower-case in ASGI) are scanned: Werkzeug answers a lookup of a missing
        # header by raising and catching an exception.
        names = {name for name, _ in request.scope["headers"]}
        if b"authorization" in names or (
            b"cookie" in names and self.cookie_name in request.cookies
        ):
            await current_user.load()


auth = AppAuth()
current_user: SessionUser = cast(SessionUser, quart_auth.current_user)


async def sign_in(verified: VerifiedAccount) -> bool:
    """Start a cookie session for a verified account, with a new id every time.

    The previous cookie session of this browser is revoked, so an id planted before
    sign-in (session fixation) is worthless after it. False when the password changed
    (or the account was deactivated) since it was checked: no session is started.
    """
    if current_user.auth_id is not None and current_user.kind is SessionKind.COOKIE:
        await revoke_session(current_user.auth_id)
    started = await start_session(verified.account, SessionKind.COOKIE, verified.password_hash)
    if started is None:
        return False
    user = SessionUser(started[0])
    user.attach(verified.account)
    # remember=True gives the cookie a Max-Age equal to the server-side lifetime.
    login_user(user, remember=True)
    return True


async def sign_out() -> None:
    """Revoke the current session (cookie or token) and clear the auth cookie."""
    if current_user.auth_id is not None:
        await revoke_session(current_user.auth_id)
    logout_user()


async def issue_token(verified: VerifiedAccount) -> tuple[str, datetime] | None:
    """Start a bearer-token session; the token and its expiry, or ``None`` as for ``sign_in``."""
    started = await start_session(verified.account, SessionKind.TOKEN, verified.password_hash)
    if started is None:
        return None
    session_id, expires_at = started
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
