"""Server-rendered HTML pages: index, sign-in, sign-out, the AJAX demo and the admin page."""

from __future__ import annotations

from quart import Blueprint, flash, redirect, render_template, request, url_for
from quart.typing import ResponseReturnValue
from quart_babel import _
from quart_rate_limiter import rate_limit
from quart_schema import hide

from quart_app.data.accounts import all_users
from quart_app.security.access import admin_required, signed_in
from quart_app.security.credentials import authenticate
from quart_app.security.rate_limits import SIGN_IN_LIMITS
from quart_app.security.safe_redirects import safe_next
from quart_app.security.signing_in import sign_in, sign_out

bp = Blueprint("main", __name__)


@bp.get("/")
@hide
async def public_index() -> str:
    """The landing page; shows flashed messages. A plain string becomes 200 text/html."""
    return await render_template("index.html")


@bp.route("/login", methods=["GET", "POST"])
@hide
@rate_limit(limits=SIGN_IN_LIMITS)
async def login() -> ResponseReturnValue:
    """The sign-in form; on success, back to a local ``next`` or the index."""
    next_path = safe_next(request.args.get("next"))
    if request.method == "GET":
        return await render_template("login.html", next=next_path)

    form = await request.form
    # Not cut to the column width: the rate limiter counted this attempt against the
    # whole name, so the same name is the one checked. An over-long name matches no user.
    username = form.get("username", "")
    verified = await authenticate(username, form.get("password", "")[:256])
    if verified is None or not await sign_in(verified):
        error = _("Invalid username or password")
        return await render_template(
            "login.html", next=next_path, error=error, username=username[:64]
        )
    await flash(_("Signed in as %(name)s", name=verified.account.username), "success")
    return redirect(next_path or url_for("main.public_index"))


@bp.post("/logout")
@hide
async def logout() -> ResponseReturnValue:
    """Sign out and go back to the index."""
    await sign_out()
    await flash(_("Signed out"), "success")
    return redirect(url_for("main.public_index"))


@bp.get("/ajax")
@hide
@signed_in
async def ajax() -> str:
    """Buttons that call the API with fetch and show each status, ok flag and body."""
    return await render_template("ajax.html")


@bp.get("/admin")
@hide
@admin_required
async def admin() -> str:
    """The admin dashboard: every user."""
    return await render_template("admin.html", users=await all_users())
