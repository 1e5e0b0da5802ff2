"""Configuration from QUART_* variables, the refusal to run with a weak secret, and what
production's defaults give users."""

from __future__ import annotations

from pathlib import Path

import pytest
from quart import Quart

from quart_app import create_app
from quart_app.config import InsecureConfigError
from quart_app.data.models import UserType
from tests.helpers.apps import TEST_CONFIG, USER_PASSWORD, Account, add_user, make_app


@pytest.mark.parametrize("secret", [None, "", "dev", "changeme", "short-but-not-placeholder"])
def test_production_refuses_a_missing_or_weak_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, secret: str | None
) -> None:
    monkeypatch.delenv("QUART_SECRET_KEY", raising=False)
    config = {"DATABASE_URL": "sqlite+aiosqlite:///:memory:"}
    if secret is not None:
        config["SECRET_KEY"] = secret
    with pytest.raises(InsecureConfigError, match="QUART_SECRET_KEY"):
        create_app(config)


def test_production_starts_with_a_real_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUART_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("QUART_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("QUART_AUTH_DURATION", "3600")
    monkeypatch.setenv("QUART_AUTH_COOKIE_SECURE", "false")
    monkeypatch.setenv("QUART_SESSION_COOKIE_SECURE", "false")
    app = create_app()
    assert app.secret_key == "k" * 48
    assert app.config["DATABASE_URL"] == "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    assert app.config["QUART_AUTH_DURATION"] == 3600
    assert app.config["QUART_AUTH_COOKIE_SECURE"] is False
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert not [key for key in app.config if key.startswith("AUTH_")]


async def test_each_setting_has_one_name_and_the_given_value_wins(
    monkeypatch: pytest.MonkeyPatch, database_url: str, user: Account
) -> None:
    """create_app's mapping beats the environment, and nothing copies over either."""
    monkeypatch.setenv("QUART_AUTH_COOKIE_NAME", "from_the_environment")
    app = make_app(database_url, QUART_AUTH_COOKIE_NAME="given", SESSION_COOKIE_SECURE=True)
    async with app.test_app():
        client = app.test_client()
        signed_in = await client.post(
            "/api/login", json={"username": user.username, "password": user.password}
        )
        document = await (await client.get("/openapi.json")).get_json()
        form = await client.get("/login")
    assert signed_in.status_code == 200
    assert signed_in.headers["Set-Cookie"].startswith("given=")
    assert document["components"]["securitySchemes"]["cookieAuth"]["name"] == "given"
    # The auth cookie's Secure flag (off in tests) no longer decides the session cookie's.
    assert app.config["QUART_AUTH_COOKIE_SECURE"] is False
    assert "Secure" in form.headers["Set-Cookie"]


async def test_apps_built_in_one_process_keep_their_own_extensions(
    database_url: str, user: Account
) -> None:
    """The first app's quart-auth, rate limiter and OpenAPI document keep its settings
    after a second app is built with other ones."""
    settings = {
        "first": {"QUART_AUTH_COOKIE_NAME": "first_auth", "QUART_AUTH_DURATION": 600},
        "second": {"QUART_AUTH_COOKIE_NAME": "second_auth", "RATE_LIMIT_ENABLED": False},
    }
    apps = {name: make_app(database_url, **config) for name, config in settings.items()}
    wrong = {"username": user.username, "password": "not-the-password"}
    right = {"username": user.username, "password": user.password}
    seen: dict[str, tuple[str, str, list[int]]] = {}
    for name, app in apps.items():
        async with app.test_app():
            client = app.test_client()
            document = await (await client.get("/openapi.json")).get_json()
            signed_in = await client.post("/api/login", json=right)
            attempts = [
                (await app.test_client().post("/api/login", json=wrong)).status_code
                for _ in range(11)
            ]
        assert signed_in.status_code == 200
        seen[name] = (
            document["components"]["securitySchemes"]["cookieAuth"]["name"],
            signed_in.headers["Set-Cookie"],
            attempts,
        )
    cookie_name, cookie, attempts = seen["first"]
    assert cookie_name == "first_auth"
    assert cookie.startswith("first_auth=")
    assert "Max-Age=600;" in cookie
    assert attempts[-1] == 429  # 10 a minute per username, counted by this app's limiter
    cookie_name, cookie, attempts = seen["second"]
    assert cookie_name == "second_auth"
    assert cookie.startswith("second_auth=")
    assert f"Max-Age={7 * 24 * 3600};" in cookie
    assert set(attempts) == {401}


SIGN_IN = {"username": "alice", "password": USER_PASSWORD}


@pytest.mark.parametrize(
    ("method", "path", "body", "cookie", "lifetime"),
    [
        ("POST", "/api/login", SIGN_IN, "quart_app_auth", f"Max-Age={7 * 24 * 3600}"),
        # The signed cookie session of the HTML forms: their CSRF token, flash messages.
        ("GET", "/login", None, "session", None),
    ],
    ids=["auth", "session"],
)
async def test_production_cookies_are_secure_http_only_and_same_site_lax(
    production_app: Quart,
    method: str,
    path: str,
    body: dict[str, str] | None,
    cookie: str,
    lifetime: str | None,
) -> None:
    await add_user(production_app, "alice", USER_PASSWORD, UserType.USER)
    response = await production_app.test_client().open(
        path, method=method, json=body, scheme="https"
    )
    assert response.status_code == 200
    [set_cookie] = [
        value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{cookie}=")
    ]
    attributes = {
        part.strip().split("=")[0].lower(): part.strip() for part in set_cookie.split(";")[1:]
    }
    assert "secure" in attributes
    assert "httponly" in attributes
    assert attributes["samesite"] == "SameSite=Lax"
    if lifetime is not None:
        assert attributes["max-age"] == lifetime


def test_without_a_database_url_the_app_uses_sqlite_in_its_instance_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("QUART_DATABASE_URL", raising=False)
    app = create_app(TEST_CONFIG)
    path = Path(app.instance_path) / "quart_app.sqlite3"
    assert app.config["DATABASE_URL"] == f"sqlite+aiosqlite:///{path}"
