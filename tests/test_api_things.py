"""The things resource: owned, paginated, 201 + Location, 204 on delete, 404 for others'."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart
from sqlalchemy import select

from quart_app.data.models import Thing, UserType
from tests.helpers.apps import Account, Client, add_user, create_thing, signed_in_client, stored


async def create(client: Client, title: str, **extra: object) -> dict[str, object]:
    response = await client.post("/api/things", json={"title": title, **extra})
    assert response.status_code == 201
    body: dict[str, object] = await response.get_json()
    return body


async def test_create_answers_201_with_location(user_client: Client) -> None:
    response = await user_client.post("/api/things", json={"title": "  buy milk  "})
    assert response.status_code == 201
    assert response.mimetype == "application/json"
    body = await response.get_json()
    assert body["title"] == "buy milk"
    assert body["done"] is False
    assert response.headers["Location"] == f"/api/things/{body['id']}"
    fetched = await user_client.get(response.headers["Location"])
    assert fetched.status_code == 200
    assert await fetched.get_json() == body


async def test_patch_changes_only_the_given_fields(user_client: Client) -> None:
    thing = await create(user_client, "write tests")
    response = await user_client.patch(f"/api/things/{thing['id']}", json={"done": True})
    assert response.status_code == 200
    body = await response.get_json()
    assert (body["title"], body["done"]) == ("write tests", True)
    response = await user_client.patch(f"/api/things/{thing['id']}", json={"title": "renamed"})
    assert (await response.get_json())["done"] is True


@pytest.mark.parametrize(
    "patch",
    [{}, {"title": None}, {"done": None}, {"title": ""}, {"done": "true"}, {"owner_id": 2}],
)
async def test_invalid_patch_is_422_and_changes_nothing(
    user_client: Client, patch: dict[str, object]
) -> None:
    thing = await create(user_client, "unchanged")
    response = await user_client.patch(f"/api/things/{thing['id']}", json=patch)
    assert response.status_code == 422
    assert await (await user_client.get(f"/api/things/{thing['id']}")).get_json() == thing


async def test_ids_are_never_reused(user_client: Client) -> None:
    # A stale Location (a deleted thing's) must never name a newer thing.
    handed_out = [await create_thing(user_client, f"item {n}") for n in range(3)]
    newest = max(handed_out)
    assert (await user_client.delete(f"/api/things/{newest}")).status_code == 204
    assert await create_thing(user_client, "after the delete") > newest
    assert (await user_client.get(f"/api/things/{newest}")).status_code == 404


async def test_delete_answers_204_with_no_body(user_client: Client) -> None:
    thing = await create(user_client, "temporary")
    response = await user_client.delete(f"/api/things/{thing['id']}")
    assert response.status_code == 204
    assert await response.get_data() == b""
    assert (await user_client.get(f"/api/things/{thing['id']}")).status_code == 404
    assert (await user_client.delete(f"/api/things/{thing['id']}")).status_code == 404


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_another_users_thing_is_not_found_and_untouched(
    app: Quart, user_client: Client, method: str
) -> None:
    thing = await create(user_client, "mine")
    bob = await signed_in_client(app, await add_user(app, "bob", "bob-password", UserType.USER))
    kwargs: dict[str, Any] = {"json": {"done": True}} if method == "PATCH" else {}
    response = await bob.open(f"/api/things/{thing['id']}", method=method, **kwargs)
    assert response.status_code == 404
    assert await response.get_json() == {"error": "Thing not found"}
    assert await (await user_client.get(f"/api/things/{thing['id']}")).get_json() == thing
    unknown = await bob.open("/api/things/987654", method=method, **kwargs)
    assert await unknown.get_json() == await response.get_json()


async def test_list_shows_only_my_things_newest_first_with_total(
    app: Quart, user_client: Client
) -> None:
    for title in ("one", "two", "three"):
        await create(user_client, title)
    bob = await signed_in_client(app, await add_user(app, "bob", "bob-password", UserType.USER))
    await create(bob, "bob's")
    response = await user_client.get("/api/things")
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "3"
    body = await response.get_json()
    assert [item["title"] for item in body["items"]] == ["three", "two", "one"]
    assert (body["total"], body["limit"], body["offset"]) == (3, 20, 0)


async def test_pages_cover_every_thing_exactly_once(user_client: Client) -> None:
    created = [(await create(user_client, f"item {n}"))["id"] for n in range(7)]
    seen: list[object] = []
    for offset in range(0, 9, 3):
        page = await (await user_client.get(f"/api/things?limit=3&offset={offset}")).get_json()
        seen.extend(item["id"] for item in page["items"])
    assert sorted(seen) == sorted(created)  # type: ignore[type-var]
    assert len(seen) == 7


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("offset=-1", "offset"), ("limit=x", "limit")],
)
async def test_page_size_is_bounded(user_client: Client, query: str, field: str) -> None:
    response = await user_client.get(f"/api/things?{query}")
    assert response.status_code == 422
    assert field in (await response.get_json())["fields"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/things"),
        ("POST", "/api/things"),
        ("GET", "/api/things/1"),
        ("PATCH", "/api/things/1"),
        ("DELETE", "/api/things/1"),
    ],
)
async def test_things_need_a_sign_in(client: Client, method: str, path: str) -> None:
    response = await client.open(path, method=method, json={"title": "x"})
    assert response.status_code == 401


async def test_what_the_api_answered_201_for_is_what_is_stored(
    app: Quart, user_client: Client, user: Account
) -> None:
    ids = {(await create(user_client, f"n{n}"))["id"] for n in range(5)}
    rows = await stored(app, select(Thing.id, Thing.owner_id))
    assert {row["id"] for row in rows} == ids
    assert {row["owner_id"] for row in rows} == {user.id}
    assert len(rows) == 5


async def test_past_the_last_page_the_total_is_still_counted(user_client: Client) -> None:
    for n in range(3):
        await create(user_client, f"item {n}")
    response = await user_client.get("/api/things?limit=2&offset=5")
    body = await response.get_json()
    assert (body["items"], body["total"], body["offset"]) == ([], 3, 5)
    assert response.headers["X-Total-Count"] == "3"
