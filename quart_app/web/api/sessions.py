"""Signing in and out: cookie sessions for browsers, bearer tokens for HTTP clients."""

from __future__ import annotations

from quart import Blueprint, Response, abort
from quart_rate_limiter import rate_limit
from quart_schema import validate_request, validate_response

from quart_app.data.models import SessionKind
from quart_app.data.session_store import revoke_session
from quart_app.http.declared import errors, no_content, uses_database
from quart_app.security.access import signed_in
from quart_app.security.auth import current_user
from quart_app.security.credentials import authenticate, check_password, set_password
from quart_app.security.rate_limits import SIGN_IN_LIMITS
from quart_app.security.signing_in import issue_token, sign_in, sign_out
from quart_app.web.schemas import Credentials, PasswordChange, TokenOut, UserEnvelope, UserOut

bp = Blueprint("sessions", __name__)

BAD_CREDENTIALS = "Invalid username or password"


@bp.post("/login")
@rate_limit(limits=SIGN_IN_LIMITS)
@errors(401)
@validate_request(Credentials)
@validate_response(UserEnvelope)
async def login(data: Credentials) -> UserEnvelope:
    """Sign in with a cookie; the same 401 for an unknown name and a wrong password."""
    verified = await authenticate(data.username, data.password)
    if verified is None or not await sign_in(verified):
        abort(401, BAD_CREDENTIALS)
    return UserEnvelope(user=UserOut.model_validate(verified.account))


@bp.post("/logout")
@no_content
@uses_database
async def logout() -> Response:
    """End the current session and clear the cookie; 204 even when already signed out."""
    await sign_out()
    return Response(status=204)


@bp.post("/tokens")
@rate_limit(limits=SIGN_IN_LIMITS)
@errors(401)
@validate_request(Credentials)
@validate_response(TokenOut, 201)
async def create_token(data: Credentials) -> tuple[TokenOut, int]:
    """Issue a bearer token for an HTTP client."""
    verified = await authenticate(data.username, data.password)
    issued = await issue_token(verified) if verified is not None else None
    if issued is None:
        abort(401, BAD_CREDENTIALS)
    token, expires_at = issued
    return TokenOut(token=token, expires_at=expires_at), 201


@bp.delete("/tokens/current")
@signed_in
@no_content
@errors(400)
async def revoke_current_token() -> Response:
    """Revoke the bearer token this request was made with."""
    if current_user.kind is not SessionKind.TOKEN or current_user.auth_id is None:
        abort(400, "This request was not made with a bearer token")
    await revoke_session(current_user.auth_id)
    return Response(status=204)


@bp.get("/me")
@signed_in
@validate_response(UserEnvelope)
async def me() -> UserEnvelope:
    """The signed-in user."""
    assert current_user.account is not None  # signed_in guarantees it
    return UserEnvelope(user=UserOut.model_validate(current_user.account))


@bp.post("/me/password")
@signed_in
@no_content
@errors(403)
@validate_request(PasswordChange)
async def change_password(data: PasswordChange) -> Response:
    """Change the signed-in user's password; every other session of theirs ends."""
    account = current_user.account
    assert account is not None  # signed_in guarantees it
    if await check_password(account, data.current_password) is None:
        abort(403, "The current password is wrong")
    await set_password(account, data.new_password, keep_session=current_user.auth_id)
    return Response(status=204)
