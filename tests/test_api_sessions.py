"""POST /api/login, /api/logout, /api/tokens, DELETE /api/tokens/current, GET /api/me."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from quart import Quart

from tests.helpers.apps import Account, Client, bearer_headers, signed_in_client

BAD_LOGIN = {"error": "Invalid username or password"}


async def test_login_answers_the_user_and_sets_the_cookie(client: Client, user: Account) -> None:
    response = await client.post(
        "/api/login", json={"username": user.username, "password": user.password}
    )
    assert response.status_code == 200
    body = await response.get_json()
    assert set(body) == {"user"}
    assert body["user"]["username"] == "alice"
    assert body["user"]["user_type"] == "user"
    assert body["user"]["is_active"] is True
    assert "password_hash" not in body["user"]
    assert any(c.startswith("quart_app_auth=") for c in response.headers.getlist("Set-Cookie"))
    assert (await client.get("/api/me")).status_code == 200


async def test_login_ignores_username_case(client: Client, user: Account) -> None:
    response = await client.post(
        "/api/login", json={"username": "ALICE", "password": user.password}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong-password"), ("nobody", "wrong-password"), ("nobody", "user-password-1")],
)
async def test_bad_credentials_get_one_answer(
    client: Client, user: Account, username: str, password: str
) -> None:
    response = await client.post("/api/login", json={"username": username, "password": password})
    assert response.status_code == 401
    assert await response.get_json() == BAD_LOGIN
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="quart_app"'
    assert "Set-Cookie" not in response.headers


async def test_unknown_user_costs_an_argon2_verification_like_a_wrong_password(
    client: Client, user: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spy that calls through: an unknown name must not skip the expensive check.
    calls: list[str] = []
    real_verify = PasswordHasher.verify

    def counting_verify(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        calls.append(hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    await client.post("/api/login", json={"username": "alice", "password": "wrong-password"})
    await client.post("/api/login", json={"username": "nobody", "password": "wrong-password"})
    assert len(calls) == 2
    assert all(h.startswith("$argon2id$") for h in calls)


async def test_a_deactivated_user_gets_the_same_401(
    app: Quart, client: Client, user: Account, admin_client: Client
) -> None:
    await admin_client.patch(f"/api/admin/users/{user.id}", json={"is_active": False})
    response = await client.post(
        "/api/login", json={"username": user.username, "password": user.password}
    )
    assert response.status_code == 401
    assert await response.get_json() == BAD_LOGIN


async def test_logout_revokes_the_session_and_clears_the_cookie(
    app: Quart, user_client: Client
) -> None:
    response = await user_client.post("/api/logout")
    assert response.status_code == 204
    assert await response.get_data() == b""
    cleared = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("quart_app_auth=")]
    assert cleared
    assert "Max-Age=0" in cleared[0] or "Expires=Thu, 01 Jan 1970" in cleared[0]
    assert (await user_client.get("/api/me")).status_code == 401


async def test_logout_when_signed_out_is_still_204(client: Client) -> None:
    assert (await client.post("/api/logout")).status_code == 204


async def test_token_create_use_and_revoke(app: Quart, client: Client, user: Account) -> None:
    response = await client.post(
        "/api/tokens", json={"username": user.username, "password": user.password}
    )
    assert response.status_code == 201
    body = await response.get_json()
    assert set(body) == {"token", "expires_at"}
    expires_at = datetime.fromisoformat(body["expires_at"])
    expected = datetime.now(UTC) + timedelta(days=7)
    assert abs(expires_at - expected) < timedelta(minutes=1)
    # Tokens are for HTTP clients: no cookie is set.
    assert "Set-Cookie" not in response.headers

    headers = {"Authorization": f"Bearer {body['token']}"}
    fresh = app.test_client()
    me = await fresh.get("/api/me", headers=headers)
    assert me.status_code == 200
    assert (await me.get_json())["user"]["username"] == "alice"

    assert (await fresh.delete("/api/tokens/current", headers=headers)).status_code == 204
    assert (await fresh.get("/api/me", headers=headers)).status_code == 401
    assert (await fresh.delete("/api/tokens/current", headers=headers)).status_code == 401


async def test_token_creation_rejects_bad_credentials(client: Client, user: Account) -> None:
    response = await client.post("/api/tokens", json={"username": "alice", "password": "nope"})
    assert response.status_code == 401
    assert await response.get_json() == BAD_LOGIN


async def test_revoking_the_current_token_needs_a_token(user_client: Client) -> None:
    response = await user_client.delete("/api/tokens/current")
    assert response.status_code == 400
    assert await response.get_json() == {"error": "This request was not made with a bearer token"}
    assert (await user_client.get("/api/me")).status_code == 200


async def test_a_cookie_value_does_not_work_as_a_bearer_token(
    app: Quart, user_client: Client
) -> None:
    assert user_client.cookie_jar is not None
    cookie = next(c.value for c in user_client.cookie_jar if c.name == "quart_app_auth")
    response = await app.test_client().get("/api/me", headers={"Authorization": f"Bearer {cookie}"})
    assert response.status_code == 401


async def test_me_needs_a_sign_in(client: Client) -> None:
    response = await client.get("/api/me")
    assert response.status_code == 401
    assert await response.get_json() == {"error": "Unauthorized"}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="quart_app"'


async def test_cookie_and_bearer_work_on_the_same_route(app: Quart, user: Account) -> None:
    browser = await signed_in_client(app, user)
    headers = await bearer_headers(app.test_client(), user)
    for response in (
        await browser.get("/api/things"),
        await app.test_client().get("/api/things", headers=headers),
    ):
        assert response.status_code == 200
