"""Admin user management under /api/admin/users."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart
from sqlalchemy import select

from quart_app.data.models import AuthSession, Thing, User
from quart_app.data.statements import Row
from tests.helpers.apps import Account, Client, signed_in_client, stored


async def everything_stored(app: Quart) -> dict[str, list[Row]]:
    """Every row of every table, in a fixed order: what a refused request must not change."""
    return {
        "users": await stored(app, select(User).order_by(User.id)),
        "sessions": await stored(app, select(AuthSession).order_by(AuthSession.id_hash)),
        "things": await stored(app, select(Thing).order_by(Thing.id)),
    }


async def test_list_users(admin_client: Client, user: Account) -> None:
    response = await admin_client.get("/api/admin/users")
    assert response.status_code == 200
    body = await response.get_json()
    assert [u["username"] for u in body["items"]] == ["root", "alice"]
    assert body["total"] == 2


async def test_users_past_the_last_page_still_count_every_user(
    admin_client: Client, user: Account
) -> None:
    body = await (await admin_client.get("/api/admin/users?limit=5&offset=10")).get_json()
    assert (body["items"], body["total"], body["offset"]) == ([], 2, 10)


async def test_create_user_answers_201_with_location(app: Quart, admin_client: Client) -> None:
    response = await admin_client.post(
        "/api/admin/users", json={"username": "Carol", "password": "carol-password"}
    )
    assert response.status_code == 201
    body = await response.get_json()
    assert (body["username"], body["user_type"], body["is_active"]) == ("Carol", "user", True)
    assert response.headers["Location"] == f"/api/admin/users/{body['id']}"
    assert await (await admin_client.get(response.headers["Location"])).get_json() == body
    carol = await signed_in_client(app, Account(body["id"], "carol", "carol-password"))
    assert (await carol.get("/api/me")).status_code == 200


@pytest.mark.parametrize("name", ["alice", "ALICE", "Alice"])
async def test_duplicate_username_is_409_in_any_case(
    admin_client: Client, user: Account, name: str
) -> None:
    response = await admin_client.post(
        "/api/admin/users", json={"username": name, "password": "another-password"}
    )
    assert response.status_code == 409
    users = await (await admin_client.get("/api/admin/users")).get_json()
    assert users["total"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "a b", "password": "long-enough"}, "username"),
        ({"username": "ab", "password": "long-enough"}, "username"),
        ({"username": "x" * 33, "password": "long-enough"}, "username"),
        ({"username": "dave", "password": "short"}, "password"),
        ({"username": "dave", "password": "p" * 257}, "password"),
        ({"username": "dave", "password": "long-enough", "user_type": "root"}, "user_type"),
        ({"username": "dave", "password": "long-enough", "is_admin": True}, "is_admin"),
    ],
)
async def test_invalid_new_user_is_422(
    admin_client: Client, body: dict[str, object], field: str
) -> None:
    response = await admin_client.post("/api/admin/users", json=body)
    assert response.status_code == 422
    assert field in (await response.get_json())["fields"]


async def test_promote_then_the_user_is_admin(
    app: Quart, admin_client: Client, user: Account
) -> None:
    alice = await signed_in_client(app, user)
    assert (await alice.get("/api/admin/users")).status_code == 403
    response = await admin_client.patch(f"/api/admin/users/{user.id}", json={"user_type": "admin"})
    assert response.status_code == 200
    assert (await response.get_json())["user_type"] == "admin"
    assert (await alice.get("/api/admin/users")).status_code == 200


async def test_password_reset_by_admin(app: Quart, admin_client: Client, user: Account) -> None:
    alice = await signed_in_client(app, user)
    response = await admin_client.patch(
        f"/api/admin/users/{user.id}", json={"password": "reset-by-admin"}
    )
    assert response.status_code == 200
    assert (await alice.get("/api/me")).status_code == 401
    relogin = await app.test_client().post(
        "/api/login", json={"username": "alice", "password": "reset-by-admin"}
    )
    assert relogin.status_code == 200


@pytest.mark.parametrize(
    "change", [{}, {"user_type": None}, {"is_active": None}, {"password": None}]
)
async def test_empty_or_null_changes_are_422(
    admin_client: Client, user: Account, change: dict[str, object]
) -> None:
    response = await admin_client.patch(f"/api/admin/users/{user.id}", json=change)
    assert response.status_code == 422
    after = await (await admin_client.get(f"/api/admin/users/{user.id}")).get_json()
    assert (after["user_type"], after["is_active"]) == ("user", True)


@pytest.mark.parametrize("change", [{"user_type": "user"}, {"is_active": False}])
async def test_the_last_admin_cannot_be_demoted_or_deactivated(
    app: Quart, admin_client: Client, admin: Account, user: Account, change: dict[str, object]
) -> None:
    before = await everything_stored(app)
    response = await admin_client.patch(f"/api/admin/users/{admin.id}", json=change)
    assert response.status_code == 409
    assert await response.get_json() == {"error": "This would leave no active admin"}
    # Still an active admin, with the session that asked: nothing was changed or revoked.
    assert await everything_stored(app) == before
    assert [(row["user_type"], row["is_active"]) for row in before["users"]] == [
        ("admin", True),
        ("user", True),
    ]
    assert (await admin_client.get("/api/admin/users")).status_code == 200


async def test_the_last_admin_cannot_be_deleted(
    app: Quart, admin_client: Client, admin: Account, user: Account
) -> None:
    await admin_client.post("/api/things", json={"title": "the admin's"})
    before = await everything_stored(app)
    assert [row["owner_id"] for row in before["things"]] == [admin.id]
    response = await admin_client.delete(f"/api/admin/users/{admin.id}")
    assert response.status_code == 409
    assert await response.get_json() == {"error": "This would leave no active admin"}
    # The admin, their session and their things are all still stored, unchanged.
    assert await everything_stored(app) == before
    assert (await admin_client.get(f"/api/admin/users/{admin.id}")).status_code == 200


async def test_delete_user_answers_204_and_ends_their_access(
    app: Quart, admin_client: Client, user: Account
) -> None:
    alice = await signed_in_client(app, user)
    await alice.post("/api/things", json={"title": "alice's"})
    response = await admin_client.delete(f"/api/admin/users/{user.id}")
    assert response.status_code == 204
    assert await response.get_data() == b""
    assert (await admin_client.get(f"/api/admin/users/{user.id}")).status_code == 404
    assert (await alice.get("/api/things")).status_code == 401


async def test_user_ids_are_never_reused(admin_client: Client, user: Account) -> None:
    # A stale Location (a deleted user's) must never name a newer user.
    listed = await (await admin_client.get("/api/admin/users")).get_json()
    handed_out = [item["id"] for item in listed["items"]]
    assert user.id == max(handed_out)
    assert (await admin_client.delete(f"/api/admin/users/{user.id}")).status_code == 204
    response = await admin_client.post(
        "/api/admin/users", json={"username": "erin", "password": "erin-password"}
    )
    assert response.status_code == 201
    assert (await response.get_json())["id"] > max(handed_out)
    assert (await admin_client.get(f"/api/admin/users/{user.id}")).status_code == 404


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_unknown_user_is_404(admin_client: Client, method: str) -> None:
    kwargs: dict[str, Any] = {"json": {"is_active": True}} if method == "PATCH" else {}
    response = await admin_client.open("/api/admin/users/4242", method=method, **kwargs)
    assert response.status_code == 404
    assert await response.get_json() == {"error": "User not found"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/admin/users"),
        ("POST", "/api/admin/users"),
        ("GET", "/api/admin/users/1"),
        ("PATCH", "/api/admin/users/1"),
        ("DELETE", "/api/admin/users/1"),
    ],
)
async def test_non_admins_are_refused_and_nothing_changes(
    client: Client, user_client: Client, admin_client: Client, method: str, path: str
) -> None:
    body = {"username": "mallory", "password": "mallory-pass", "user_type": "admin"}
    kwargs: dict[str, Any] = {"json": {"user_type": "user"} if method == "PATCH" else body}
    assert (await client.open(path, method=method, **kwargs)).status_code == 401
    assert (await user_client.open(path, method=method, **kwargs)).status_code == 403
    users = await (await admin_client.get("/api/admin/users")).get_json()
    assert sorted((u["username"], u["user_type"]) for u in users["items"]) == [
        ("alice", "user"),
        ("root", "admin"),
    ]
