"""Who may call a view: ``signed_in`` and ``admin_required`` enforce what the document lists."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from quart import Quart
from werkzeug.routing import Rule

from quart_app.security.access import admin_required
from quart_app.security.auth import current_user
from quart_app.web.openapi import error_statuses
from tests.helpers.apps import (
    AUTH_COOKIE,
    Account,
    Client,
    auth_cookie,
    bearer_headers,
    signed_in_client,
)

ADMIN_ERROR = {"error": "Admin access is required"}
CHALLENGE = 'Bearer realm="quart_app"'


async def credentials_for(app: Quart, who: str, user: Account, admin: Account) -> dict[str, str]:
    """Request headers carrying each kind of credential the matrix tries."""
    if who == "anonymous":
        return {}
    if who == "forged cookie":
        return {"Cookie": f"{AUTH_COOKIE}=forged"}
    if who == "forged bearer":
        return {"Authorization": "Bearer forged"}
    account = admin if who.startswith("admin") else user
    client = await signed_in_client(app, account)
    if who.endswith("bearer"):
        headers = await bearer_headers(client, account)
        if who.startswith("revoked"):
            assert (await client.delete("/api/tokens/current", headers=headers)).status_code == 204
        return headers
    cookie = {"Cookie": f"{AUTH_COOKIE}={auth_cookie(client)}"}
    if who.startswith("revoked"):
        assert (await client.post("/api/logout")).status_code == 204
    return cookie


ANONYMOUS = ["anonymous", "forged cookie", "forged bearer", "revoked cookie", "revoked bearer"]


@pytest.mark.parametrize(
    ("who", "status", "www_authenticate"),
    [(who, 401, 'Bearer realm="quart_app"') for who in ANONYMOUS]
    + [("user cookie", 403, None), ("user bearer", 403, None)],
)
async def test_api_refuses_all_but_admins_with_json(
    app: Quart, user: Account, admin: Account, who: str, status: int, www_authenticate: str | None
) -> None:
    headers = await credentials_for(app, who, user, admin)
    response = await app.test_client().get("/api/admin/users", headers=headers)
    assert response.status_code == status
    assert await response.get_json() == ADMIN_ERROR
    assert response.headers.get("WWW-Authenticate") == www_authenticate


@pytest.mark.parametrize("who", ["admin cookie", "admin bearer"])
async def test_api_as_admin_runs_the_view(
    app: Quart, user: Account, admin: Account, who: str
) -> None:
    headers = await credentials_for(app, who, user, admin)
    response = await app.test_client().get("/api/admin/users", headers=headers)
    assert response.status_code == 200
    assert (await response.get_json())["total"] == 2


@pytest.mark.parametrize("who", ["anonymous", "forged cookie", "revoked cookie"])
async def test_html_without_valid_credentials_flashes_and_goes_to_login(
    app: Quart, user: Account, admin: Account, who: str
) -> None:
    headers = await credentials_for(app, who, user, admin)
    client = app.test_client()
    response = await client.get("/admin", headers=headers)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/admin"]}
    page = await (await client.get(response.headers["Location"])).get_data(as_text=True)
    assert "Admin access required" in page


async def test_html_as_a_non_admin_flashes_and_goes_to_the_public_index(
    user_client: Client,
) -> None:
    response = await user_client.get("/admin")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = await (await user_client.get("/")).get_data(as_text=True)
    assert "Admin access required" in page


async def test_html_as_admin_shows_the_dashboard(admin_client: Client, user: Account) -> None:
    response = await admin_client.get("/admin")
    assert response.status_code == 200
    page = await response.get_data(as_text=True)
    assert "<td>alice</td>" in page
    assert "<td>root</td>" in page


def test_admin_required_keeps_the_views_name_and_docstring() -> None:
    def dashboard() -> str:
        """Shows the dashboard."""
        return "ok"

    wrapped = admin_required(dashboard)
    assert wrapped.__name__ == "dashboard"
    assert wrapped.__doc__ == "Shows the dashboard."
    assert wrapped.__wrapped__ is dashboard  # type: ignore[attr-defined]


async def test_admin_required_wraps_sync_views_and_current_user_is_sync(
    app: Quart, user: Account, admin: Account
) -> None:
    @app.get("/api/admin/whoami")
    @admin_required
    def whoami() -> dict[str, str | None]:
        # The seed's check, read synchronously inside a plain def view.
        return {"user_type": current_user.user_type, "username": current_user.username}

    admin_client = await signed_in_client(app, admin)
    user_client = await signed_in_client(app, user)
    response = await admin_client.get("/api/admin/whoami")
    assert response.status_code == 200
    assert await response.get_json() == {"user_type": "admin", "username": "root"}
    assert (await user_client.get("/api/admin/whoami")).status_code == 403
    assert (await app.test_client().get("/api/admin/whoami")).status_code == 401


@pytest.mark.parametrize("who", ANONYMOUS)
async def test_signed_in_answers_api_callers_401_json_with_a_challenge(
    app: Quart, user: Account, admin: Account, who: str
) -> None:
    headers = await credentials_for(app, who, user, admin)
    response = await app.test_client().get("/api/things", headers=headers)
    assert response.status_code == 401
    assert await response.get_json() == {"error": "Unauthorized"}
    assert response.headers["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize("who", ["anonymous", "forged cookie", "revoked cookie"])
async def test_signed_in_sends_browsers_to_the_sign_in_page(
    app: Quart, user: Account, admin: Account, who: str
) -> None:
    headers = await credentials_for(app, who, user, admin)
    response = await app.test_client().get("/ajax", headers=headers)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.path, parse_qs(location.query)) == ("/login", {"next": ["/ajax"]})


@pytest.mark.parametrize("who", ["user cookie", "user bearer", "admin bearer"])
async def test_signed_in_lets_any_live_session_through(
    app: Quart, user: Account, admin: Account, who: str
) -> None:
    headers = await credentials_for(app, who, user, admin)
    response = await app.test_client().get("/api/me", headers=headers)
    assert response.status_code == 200
    username = admin.username if who.startswith("admin") else user.username
    assert (await response.get_json())["user"]["username"] == username


def _anonymous_call(path: str, operation: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a test-client call that satisfies everything but credentials."""
    call: dict[str, Any] = {"path": path.replace("{thing_id}", "1").replace("{user_id}", "1")}
    if "requestBody" in operation:
        call["json"] = {}
    return call


async def test_every_operation_documented_as_needing_credentials_refuses_anonymous_callers(
    client: Client,
) -> None:
    """The document and the decorators cannot disagree: the same decorator does both."""
    document = await (await client.get("/openapi.json")).get_json()
    checked = {True: 0, False: 0}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            response = await client.open(method=method.upper(), **_anonymous_call(path, operation))
            documented = "security" in operation
            assert (response.status_code == 401) is documented, (method, path, response.status_code)
            if documented:
                assert "401" in operation["responses"], (method, path)
            checked[documented] += 1
    assert checked[True] >= 10
    assert checked[False] >= 4


def test_admin_required_documents_credentials_and_the_403() -> None:
    async def dashboard() -> str:
        return "ok"

    wrapped = admin_required(dashboard)
    assert error_statuses(Rule("/api/x"), "GET", wrapped) == {401, 403, 503}
