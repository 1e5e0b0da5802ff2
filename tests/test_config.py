"""Configuration from QUART_* variables, and the refusal to run with a weak secret."""

from __future__ import annotations

import pytest

from quart_app import create_app
from quart_app.config import InsecureConfigError
from tests.helpers.apps import TEST_CONFIG


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
    app = create_app()
    assert app.secret_key == "k" * 48
    assert app.config["DATABASE_URL"] == "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    assert app.config["QUART_AUTH_DURATION"] == 3600
    assert app.config["QUART_AUTH_COOKIE_SECURE"] is False
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QUART_AUTH_DURATION", "QUART_AUTH_COOKIE_SECURE", "QUART_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({**TEST_CONFIG, "AUTH_COOKIE_SECURE": True})
    assert app.config["QUART_AUTH_COOKIE_SECURE"] is True
    assert app.config["QUART_AUTH_COOKIE_HTTP_ONLY"] is True
    assert app.config["QUART_AUTH_COOKIE_SAMESITE"] == "Lax"
    assert app.config["QUART_AUTH_DURATION"] == 7 * 24 * 3600
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
    assert app.config["DATABASE_URL"].startswith("sqlite+aiosqlite:///")
    assert app.config["DATABASE_URL"].endswith("instance/quart_app.sqlite3")
