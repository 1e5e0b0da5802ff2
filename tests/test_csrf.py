"""Cross-site request forgery: the API's origin and JSON rules, and the forms' tokens."""

from __future__ import annotations

import pytest
from quart import Quart
from sqlalchemy import select

from quart_app.data.models import AuthSession, Thing
from tests.helpers.apps import (
    Account,
    Client,
    bearer_headers,
    form_token,
    signed_in_client,
    stored,
)

OWN_ORIGIN = "http://localhost"


async def thing_count(client: Client) -> int:
    body = await (await client.get("/api/things")).get_json()
    total: int = body["total"]
    return total


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({"Sec-Fetch-Site": "same-origin"}, 201, None),
        ({"Origin": OWN_ORIGIN}, 201, None),
        ({"Sec-Fetch-Site": "cross-site"}, 403, "Cross-site request refused"),
        ({"Sec-Fetch-Site": "same-site"}, 403, "Cross-site request refused"),
        ({"Sec-Fetch-Site": "none"}, 403, "Cross-site request refused"),
        (
            {"Sec-Fetch-Site": "cross-site", "Origin": OWN_ORIGIN},
            403,
            "Cross-site request refused",
        ),
        ({"Origin": "https://evil.example"}, 403, "The request's origin could not be verified"),
        ({"Origin": "null"}, 403, "The request's origin could not be verified"),
        ({}, 403, "The request's origin could not be verified"),
    ],
    ids=[
        "fetch-same-origin",
        "origin-match",
        "cross-site",
        "same-site",
        "none",
        "cross-site-despite-origin",
        "foreign-origin",
        "opaque-origin",
        "no-evidence",
    ],
)
async def test_cookie_writes_must_be_same_origin(
    app: Quart, user: Account, headers: dict[str, str], status: int, error: str | None
) -> None:
    client = await signed_in_client(app, user)
    # A plain test client sends only the headers given here, plus the stolen-by-nobody
    # cookie a browser would attach on its own.
    response = await app.test_client().post(
        "/api/things",
        json={"title": "forged?"},
        headers={"Cookie": cookie_header(client), **headers},
    )
    assert response.status_code == status
    if error is not None:
        assert await response.get_json() == {"error": error}
    assert await thing_count(client) == (1 if status == 201 else 0)


def cookie_header(client: Client) -> str:
    assert client.cookie_jar is not None
    return "; ".join(f"{c.name}={c.value}" for c in client.cookie_jar)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
)
async def test_cookie_writes_must_be_json(
    app: Quart, user_client: Client, content_type: str
) -> None:
    # The three content types a cross-site HTML form can send without a preflight.
    response = await user_client.post(
        "/api/things", data="title=forged", headers={"Content-Type": content_type}
    )
    assert response.status_code == 415
    assert await response.get_json() == {
        "error": "Send the body as JSON with Content-Type: application/json"
    }
    assert await thing_count(user_client) == 0


# What jQuery's $.ajax({type: "DELETE"}) and $.post(url), axios.delete(url) and a
# generated client send without a body: no Content-Type, or a form type with nothing.
BODILESS = [{}, {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}]


@pytest.mark.parametrize("headers", BODILESS, ids=["no-type", "form-type"])
async def test_a_bodiless_cookie_delete_and_logout_need_no_json(
    user_client: Client, headers: dict[str, str]
) -> None:
    created = await (await user_client.post("/api/things", json={"title": "go"})).get_json()
    deleted = await user_client.delete(f"/api/things/{created['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await user_client.get(f"/api/things/{created['id']}")).status_code == 404
    logged_out = await user_client.post("/api/logout", headers=headers)
    assert logged_out.status_code == 204
    assert (await user_client.get("/api/me")).status_code == 401


@pytest.mark.parametrize("headers", BODILESS, ids=["no-type", "form-type"])
async def test_a_bodiless_cookie_delete_must_still_be_same_origin(
    app: Quart, user_client: Client, headers: dict[str, str]
) -> None:
    created = await (await user_client.post("/api/things", json={"title": "keep"})).get_json()
    things_before = await stored(app, select(Thing))
    refused = await app.test_client().delete(
        f"/api/things/{created['id']}",
        headers={"Cookie": cookie_header(user_client), "Origin": "https://evil.example", **headers},
    )
    assert refused.status_code == 403
    assert await refused.get_json() == {"error": "The request's origin could not be verified"}
    assert await stored(app, select(Thing)) == things_before
    assert [row["id"] for row in things_before] == [created["id"]]
    assert (await user_client.get(f"/api/things/{created['id']}")).status_code == 200


async def test_cookie_logout_cannot_be_forced_cross_site(app: Quart, user_client: Client) -> None:
    sessions_before = await stored(app, select(AuthSession))
    assert [row["revoked_at"] for row in sessions_before] == [None]
    response = await user_client.post("/api/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert await response.get_json() == {"error": "Cross-site request refused"}
    # The session is not revoked, and the browser is not told to drop its cookie.
    assert await stored(app, select(AuthSession)) == sessions_before
    assert "Set-Cookie" not in response.headers
    assert (await user_client.get("/api/me")).status_code == 200


async def test_bearer_requests_are_exempt(app: Quart, user: Account) -> None:
    headers = await bearer_headers(app.test_client(), user)
    client = app.test_client()
    response = await client.post("/api/things", json={"title": "from a script"}, headers=headers)
    assert response.status_code == 201
    thing = await response.get_json()
    deleted = await client.delete(f"/api/things/{thing['id']}", headers=headers)
    assert deleted.status_code == 204


async def test_async_clients_without_cookies_can_sign_in(client: Client, user: Account) -> None:
    # httpx and aiohttp send neither Origin nor Sec-Fetch-Site; without a cookie
    # there is nothing to forge.
    response = await client.post(
        "/api/tokens", json={"username": user.username, "password": user.password}
    )
    assert response.status_code == 201


async def test_cross_site_login_is_refused(client: Client, user: Account) -> None:
    response = await client.post(
        "/api/login",
        json={"username": user.username, "password": user.password},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_forms_without_the_right_token_are_refused(
    client: Client, user: Account, token: str | None
) -> None:
    await client.get("/login")  # the session now has a token; the form sends another
    form = {"username": user.username, "password": user.password}
    if token is not None:
        form["csrf_token"] = token
    response = await client.post("/login", form=form)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "security token" in await response.get_data(as_text=True)
    assert (await client.get("/api/me")).status_code == 401


async def test_a_token_from_another_session_is_refused(app: Quart, user: Account) -> None:
    attacker, victim = app.test_client(), app.test_client()
    page = await (await attacker.get("/login")).get_data(as_text=True)
    attackers_token = form_token(page)
    await victim.get("/login")
    response = await victim.post(
        "/login",
        form={"username": user.username, "password": user.password, "csrf_token": attackers_token},
    )
    assert response.status_code == 400


async def test_logout_form_needs_its_token(user_client: Client) -> None:
    assert (await user_client.post("/logout", form={})).status_code == 400
    assert (await user_client.get("/api/me")).status_code == 200
