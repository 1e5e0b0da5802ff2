"""The HTML pages: index, sign-in form, sign-out, admin dashboard."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.helpers.apps import Account, Client, submit_form


async def test_index_is_a_plain_string_served_as_html(client: Client) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>quart_app</h1>" in await response.get_data(as_text=True)


async def test_login_form_has_username_and_password_fields(client: Client) -> None:
    page = await (await client.get("/login")).get_data(as_text=True)
    assert 'name="username"' in page
    assert 'name="password"' in page
    assert 'type="password"' in page


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong-password"),
        ("nobody", "wrong-password"),
        ("nul\x00inside", "wrong-password"),  # PostgreSQL cannot even take this text
        ("x" * 64, "wrong-password"),
    ],
)
async def test_failed_login_rerenders_the_form_without_saying_why(
    client: Client, user: Account, username: str, password: str
) -> None:
    response = await submit_form(client, "/login", {"username": username, "password": password})
    assert response.status_code == 200
    page = await response.get_data(as_text=True)
    assert "Invalid username or password" in page
    assert f'value="{username}"' in page
    assert (await client.get("/api/me")).status_code == 401


async def test_login_signs_in_and_goes_to_the_index(client: Client, user: Account) -> None:
    response = await submit_form(
        client, "/login", {"username": user.username, "password": user.password}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = await (await client.get("/")).get_data(as_text=True)
    assert "Signed in as alice" in page
    assert (await client.get("/api/me")).status_code == 200


@pytest.mark.parametrize(
    ("next_param", "destination"),
    [
        ("/admin", "/admin"),
        ("/api/things?limit=5", "/api/things?limit=5"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
async def test_next_only_leads_to_a_local_path(
    client: Client, admin: Account, next_param: str, destination: str
) -> None:
    response = await submit_form(
        client,
        f"/login?next={quote(next_param, safe='')}",
        {"username": admin.username, "password": admin.password},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == destination


async def test_the_form_keeps_next_across_a_failed_attempt(client: Client, user: Account) -> None:
    page = await (
        await submit_form(client, "/login?next=/admin", {"username": "alice", "password": "nope"})
    ).get_data(as_text=True)
    assert 'action="/login?next=/admin"' in page or 'action="/login?next=%2Fadmin"' in page


async def test_logout_form_signs_out(user_client: Client) -> None:
    response = await submit_form(user_client, "/", {}, action="/logout")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "Signed out" in await (await user_client.get("/")).get_data(as_text=True)
    assert (await user_client.get("/api/me")).status_code == 401


async def test_logout_is_post_only(user_client: Client) -> None:
    assert (await user_client.get("/logout")).status_code == 405
    assert (await user_client.get("/api/me")).status_code == 200


async def test_admin_signs_in_through_the_form_and_sees_the_dashboard(
    client: Client, admin: Account, user: Account
) -> None:
    first = await client.get("/admin")
    assert first.status_code == 302
    response = await submit_form(
        client, first.headers["Location"], {"username": "root", "password": admin.password}
    )
    assert response.headers["Location"] == "/admin"
    dashboard = await client.get("/admin")
    assert dashboard.status_code == 200
    page = await dashboard.get_data(as_text=True)
    assert "<td>alice</td>" in page
    assert "Sign out" in page


async def test_ajax_page_needs_a_sign_in(client: Client) -> None:
    response = await client.get("/ajax")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/ajax"


async def test_ajax_page_offers_every_call_and_loads_the_client(user_client: Client) -> None:
    page = await (await user_client.get("/ajax")).get_data(as_text=True)
    for call in ("status", "create", "list", "toggle", "delete", "admin", "invalid", "missing"):
        assert f'<button type="button" data-call="{call}">' in page
    assert '<script type="module" src="/static/js/ajax.js"></script>' in page


@pytest.mark.parametrize("script", ["api.js", "ajax.js", "admin.js"])
async def test_scripts_are_served_as_javascript(client: Client, script: str) -> None:
    response = await client.get(f"/static/js/{script}")
    assert response.status_code == 200
    assert response.mimetype in {"text/javascript", "application/javascript"}
