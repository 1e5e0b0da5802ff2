"""Cross-site request forgery defences.

JSON API: an unsafe request authenticated by the auth cookie must come from this
origin (``Sec-Fetch-Site: same-origin``, or a matching ``Origin`` from clients that do
not send Fetch metadata) and, if it has a body, that body must be JSON, which a
cross-site HTML form cannot send without a CORS preflight this app never grants.
Bearer requests are exempt: browsers never attach a bearer token on their own.

HTML forms: a per-session token in a hidden field, checked on every unsafe request.
"""

from __future__ import annotations

import hmac
import secrets

from quart import Quart, abort, current_app, request, session
from werkzeug.exceptions import UnsupportedMediaType

from quart_app.http.api_errors import is_api_request
from quart_app.http.bodies import NOT_JSON, request_has_body

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_FIELD = "csrf_token"
_SESSION_KEY = "csrf_token"


def csrf_token() -> str:
    """This session's form token, created on first use."""
    token = session.get(_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


def rotate_csrf_token() -> None:
    """Forget the form token, so a new one is issued (after sign-in and sign-out)."""
    session.pop(_SESSION_KEY, None)


def _own_origin() -> str:
    return f"{request.scheme}://{request.host}"


def _check_api_request() -> None:
    if "Authorization" in request.headers:
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        abort(403, "Cross-site request refused")
    if current_app.config["QUART_AUTH_COOKIE_NAME"] not in request.cookies:
        return
    if site is None and request.headers.get("Origin") != _own_origin():
        abort(403, "The request's origin could not be verified")
    # The JSON rule is about the body: a DELETE or a logout without one (as jQuery,
    # axios and generated clients send them) has nothing to declare.
    if request_has_body() and request.mimetype != "application/json":
        raise UnsupportedMediaType(NOT_JSON)


async def _check_form_token() -> None:
    form = await request.form
    expected = session.get(_SESSION_KEY)
    sent = form.get(FORM_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        abort(400, "The form's security token is missing or stale. Reload the page and retry.")


async def protect_from_csrf() -> None:
    """Refuse unsafe requests that a third-party site could have forged."""
    # Unknown paths and methods get their 404/405 first; there is nothing to protect.
    if request.method in SAFE_METHODS or request.routing_exception is not None:
        return
    if is_api_request():
        _check_api_request()
    else:
        await _check_form_token()


def init_app(app: Quart) -> None:
    """Check every request and give templates ``csrf_token()``."""
    app.before_request(protect_from_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
