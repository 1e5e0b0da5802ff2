"""Who may call a view: ``signed_in`` and ``admin_required``, each enforcing what it documents.

Both answer API callers (``/api/``) in JSON and browsers with a redirect, and both
mark the view in the OpenAPI document as needing credentials, so its 401 and 503
(and the admins-only 403) are listed by the same decorator that answers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar, cast

from quart import current_app, flash, redirect, url_for
from quart.typing import ResponseReturnValue
from quart_auth import login_required
from quart_babel import _

from quart_app.http.api_errors import is_api_request, json_error
from quart_app.http.declared import errors, needs_credentials
from quart_app.security.auth import current_user
from quart_app.security.safe_redirects import login_url_for_current_request

P = ParamSpec("P")
T = TypeVar("T")

ADMIN_REQUIRED = "Admin access is required"


def signed_in(view: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Let only signed-in users through: a live session of an active user.

    Anyone else gets a 401: JSON with ``WWW-Authenticate`` under ``/api/``, a redirect
    to the sign-in page elsewhere (``errors.handle_http_exception``).
    """
    return needs_credentials(login_required(view))


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
        anonymous = current_user.account is None
        if is_api_request():
            # The seed's `return jsonify(...), 401`, with the challenge RFC 9110 requires.
            return json_error(ADMIN_REQUIRED, 401 if anonymous else 403)
        await flash(_("Admin access required"), "error")
        if anonymous:
            return redirect(login_url_for_current_request())
        return redirect(url_for("main.public_index"))

    return needs_credentials(errors(403)(wrapper))
