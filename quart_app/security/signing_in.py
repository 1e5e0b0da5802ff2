"""Signing in and out: everything a sign-in or a sign-out must do, in one place.

A browser signs in with a cookie session (the form or ``POST /api/login``), an HTTP
client with a bearer token (``POST /api/tokens``). Views only check the password
(``accounts.authenticate``) and answer; these functions do the rest.
"""

from __future__ import annotations

from datetime import datetime

from quart_auth import login_user, logout_user

from quart_app.data.models import SessionKind
from quart_app.data.session_store import revoke_session, start_session
from quart_app.security.auth import SessionUser, app_auth, current_user
from quart_app.security.credentials import VerifiedAccount
from quart_app.security.csrf import rotate_csrf_token


async def sign_in(verified: VerifiedAccount) -> bool:
    """Start a cookie session for a verified account, with a new id every time.

    The browser's previous cookie session is revoked and its form token replaced, so
    an id or a token planted before sign-in (session fixation) is worthless after it.
    False when the password changed (or the account was deactivated) since it was
    checked: no session is started and nothing changes.
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
    rotate_csrf_token()
    return True


async def sign_out() -> None:
    """Revoke the current session (cookie or token), clear the auth cookie and form token."""
    if current_user.auth_id is not None:
        await revoke_session(current_user.auth_id)
    logout_user()
    rotate_csrf_token()


async def issue_token(verified: VerifiedAccount) -> tuple[str, datetime] | None:
    """Start a bearer-token session; the token and its expiry, or ``None`` as for ``sign_in``."""
    started = await start_session(verified.account, SessionKind.TOKEN, verified.password_hash)
    if started is None:
        return None
    session_id, expires_at = started
    return app_auth().dump_token(session_id), expires_at
