"""The quart-auth adapter: credentials name a server-side session, checked on every request."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from quart import Quart
from sqlalchemy import bindparam, select, update

from quart_app.data.base import utcnow
from quart_app.data.database import db
from quart_app.data.models import AuthSession
from quart_app.data.session_store import hash_session_id
from quart_app.data.statements import Query
from quart_app.security.auth import AppAuth, app_auth
from tests.helpers.apps import (
    AUTH_COOKIE,
    Account,
    Client,
    auth_cookie,
    bearer_headers,
    make_app,
    signed_in_client,
    stored,
)


async def test_the_auth_id_is_an_opaque_session_id_stored_only_as_a_hash(
    app: Quart, user_client: Client, user: Account
) -> None:
    async with app.app_context():
        session_id = app_auth().load_token(auth_cookie(user_client))
        assert session_id is not None
        assert session_id != str(user.id)
        assert len(session_id) >= 40
    hashes = [row["id_hash"] for row in await stored(app, select(AuthSession.id_hash))]
    assert hashes == [hash_session_id(session_id)]
    assert session_id not in hashes


async def test_an_expired_session_is_refused(app: Quart, user_client: Client) -> None:
    async with app.app_context():
        await db.execute(
            Query(update(AuthSession).values(expires_at=bindparam("at"))),
            at=utcnow() - timedelta(seconds=1),
        )
    response = await user_client.get("/api/me")
    assert response.status_code == 401


async def test_password_change_ends_other_sessions_but_not_this_one(
    app: Quart, user: Account
) -> None:
    browser = await signed_in_client(app, user)
    other_browser = await signed_in_client(app, user)
    token = await bearer_headers(app.test_client(), user)
    response = await browser.post(
        "/api/me/password",
        json={"current_password": user.password, "new_password": "a-brand-new-pass"},
    )
    assert response.status_code == 204
    assert (await browser.get("/api/me")).status_code == 200
    assert (await other_browser.get("/api/me")).status_code == 401
    assert (await app.test_client().get("/api/me", headers=token)).status_code == 401
    old = await app.test_client().post(
        "/api/login", json={"username": user.username, "password": user.password}
    )
    new = await app.test_client().post(
        "/api/login", json={"username": user.username, "password": "a-brand-new-pass"}
    )
    assert (old.status_code, new.status_code) == (401, 200)


async def test_password_change_needs_the_current_password(
    app: Quart, user_client: Client, user: Account
) -> None:
    response = await user_client.post(
        "/api/me/password",
        json={"current_password": "wrong-one", "new_password": "a-brand-new-pass"},
    )
    assert response.status_code == 403
    assert await response.get_json() == {"error": "The current password is wrong"}
    login = await app.test_client().post(
        "/api/login", json={"username": user.username, "password": user.password}
    )
    assert login.status_code == 200


async def test_deactivation_applies_on_the_next_request(
    app: Quart, user: Account, admin_client: Client
) -> None:
    user_browser = await signed_in_client(app, user)
    token = await bearer_headers(app.test_client(), user)
    response = await admin_client.patch(f"/api/admin/users/{user.id}", json={"is_active": False})
    assert response.status_code == 200
    assert (await user_browser.get("/api/me")).status_code == 401
    assert (await app.test_client().get("/api/me", headers=token)).status_code == 401


async def test_demotion_applies_on_the_next_request(
    app: Quart, admin: Account, admin_client: Client
) -> None:
    other = await signed_in_client(app, admin)
    second_admin = await admin_client.post(
        "/api/admin/users",
        json={"username": "deputy", "password": "deputy-password", "user_type": "admin"},
    )
    deputy_id = (await second_admin.get_json())["id"]
    deputy = await signed_in_client(app, Account(deputy_id, "deputy", "deputy-password"))
    assert (await deputy.get("/api/admin/users")).status_code == 200
    demoted = await other.patch(f"/api/admin/users/{deputy_id}", json={"user_type": "user"})
    assert demoted.status_code == 200
    # Demotion ends the deputy's sessions (accounts.change_user): the old cookie no
    # longer names anyone, so the answer is the anonymous one, a 401 with its challenge.
    refused = await deputy.get("/api/admin/users")
    assert refused.status_code == 401
    assert await refused.get_json() == {"error": "Admin access is required"}
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="quart_app"'
    # Signed in again, the deputy is a plain user: known, and refused with a 403.
    again = await signed_in_client(app, Account(deputy_id, "deputy", "deputy-password"))
    forbidden = await again.get("/api/admin/users")
    assert forbidden.status_code == 403
    assert await forbidden.get_json() == {"error": "Admin access is required"}
    assert "WWW-Authenticate" not in forbidden.headers


@pytest.mark.parametrize(
    ("secure_setting", "scheme", "secure_flag"),
    [(True, "https", True), (False, "http", False)],
)
async def test_auth_cookie_flags(
    database_url: str, user: Account, secure_setting: bool, scheme: str, secure_flag: bool
) -> None:
    app = make_app(database_url, QUART_AUTH_COOKIE_SECURE=secure_setting)
    async with app.test_app():
        response = await app.test_client().post(
            "/api/login",
            json={"username": user.username, "password": user.password},
            scheme=scheme,
        )
    assert response.status_code == 200
    cookie = next(
        value for value in response.headers.getlist("Set-Cookie") if value.startswith(AUTH_COOKIE)
    )
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].strip() == "SameSite=Lax"
    assert attributes["max-age"].strip() == f"Max-Age={7 * 24 * 3600}"
    assert ("secure" in attributes) is secure_flag


# --- verified tokens, remembered -------------------------------------------------------


def test_a_remembered_token_still_expires(app: Quart, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = app_auth(app)
    token = auth.dump_token("session-id", app)
    assert auth.load_token(token, app) == "session-id"
    assert auth.load_token(token, app) == "session-id"  # remembered
    assert auth.duration is not None
    later = time.time() + auth.duration + 5
    monkeypatch.setattr(time, "time", lambda: later)
    assert auth.load_token(token, app) is None
    assert token not in auth.verified_tokens


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), id="sig"),
        pytest.param(lambda token: "x" + token, id="payload"),
        pytest.param(lambda token: "", id="empty"),
    ],
)
def test_a_tampered_token_is_refused_and_not_remembered(
    app: Quart, tamper: Callable[[str], str]
) -> None:
    auth = app_auth(app)
    forged = tamper(auth.dump_token("session-id", app))
    assert auth.load_token(forged, app) is None
    assert forged not in auth.verified_tokens


def test_remembered_tokens_are_bounded(app: Quart, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AppAuth, "verified_tokens_kept", 3)
    auth = app_auth(app)
    tokens = {f"id-{n}": auth.dump_token(f"id-{n}", app) for n in range(5)}
    for _ in range(2):
        for auth_id, token in tokens.items():
            assert auth.load_token(token, app) == auth_id
    assert len(auth.verified_tokens) == 3


def test_a_token_remembered_by_one_app_is_refused_by_an_app_with_another_key(
    app: Quart, database_url: str
) -> None:
    token = app_auth(app).dump_token("session-id", app)
    assert app_auth(app).load_token(token, app) == "session-id"
    other = make_app(database_url, SECRET_KEY="another-secret-key-that-is-long-enough-too")
    assert app_auth(other).load_token(token, other) is None
