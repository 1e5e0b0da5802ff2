"""Signing in and out: a new session id and a new form token every time, by form or API."""

from __future__ import annotations

import pytest
from quart import Quart

from tests.helpers.apps import (
    AUTH_COOKIE,
    Account,
    Client,
    auth_cookie,
    browser_client,
    form_token,
    signed_in_client,
    submit_form,
)


async def sign_in_page_token(client: Client) -> str:
    """The form token the sign-in page gives *client*."""
    return form_token(await (await client.get("/login")).get_data(as_text=True))


async def sign_in_by(way: str, client: Client, user: Account) -> None:
    credentials = {"username": user.username, "password": user.password}
    if way == "form":
        response = await submit_form(client, "/login", credentials)
        assert response.status_code == 302
    else:
        assert (await client.post("/api/login", json=credentials)).status_code == 200


async def sign_out_by(way: str, client: Client) -> None:
    if way == "form":
        assert (await submit_form(client, "/", {}, action="/logout")).status_code == 302
    else:
        assert (await client.post("/api/logout")).status_code == 204


async def test_sign_in_issues_a_new_session_id_and_revokes_the_old_one(
    app: Quart, user: Account
) -> None:
    client = await signed_in_client(app, user)
    first = auth_cookie(client)
    await client.post("/api/login", json={"username": user.username, "password": user.password})
    second = auth_cookie(client)
    assert first != second
    stranger = app.test_client()
    assert (
        await stranger.get("/api/me", headers={"Cookie": f"{AUTH_COOKIE}={first}"})
    ).status_code == 401
    assert (
        await stranger.get("/api/me", headers={"Cookie": f"{AUTH_COOKIE}={second}"})
    ).status_code == 200


@pytest.mark.parametrize("way", ["form", "api"])
async def test_sign_in_replaces_the_form_token(app: Quart, user: Account, way: str) -> None:
    client = browser_client(app)
    planted = await sign_in_page_token(client)
    await sign_in_by(way, client, user)
    assert await sign_in_page_token(client) != planted
    # A form carrying the token from before sign-in is refused and changes nothing.
    refused = await client.post("/logout", form={"csrf_token": planted})
    assert refused.status_code == 400
    assert (await client.get("/api/me")).status_code == 200


@pytest.mark.parametrize("way", ["form", "api"])
async def test_sign_out_replaces_the_form_token(app: Quart, user: Account, way: str) -> None:
    client = await signed_in_client(app, user)
    signed_in_token = await sign_in_page_token(client)
    await sign_out_by(way, client)
    assert (await client.get("/api/me")).status_code == 401
    assert await sign_in_page_token(client) != signed_in_token
