"""Every error status /openapi.json documents is one a real request gets.

The table of documented statuses is tests/test_openapi.py's ``ERROR_STATUSES`` (checked
against the document there); each (operation, status) pair is provoked here through
the app, and the answer must be what the document says: that status, JSON, the
``Error`` body and the headers its shared response requires. Schemathesis
(tests/test_fuzz.py) checks the converse: that no answer has an undocumented status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from quart import Quart, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from quart_app.config import DEFAULTS
from quart_app.data.base import MAX_ID
from quart_app.data.database import build_engine
from quart_app.data.models import UserType
from quart_app.web.schemas import Error
from tests.helpers.apps import (
    USER_PASSWORD,
    Account,
    Client,
    add_user,
    bearer_headers,
    make_app,
    signed_in_client,
)
from tests.helpers.relay import TcpRelay
from tests.helpers.services import reset_schema
from tests.helpers.sse import open_stream
from tests.test_openapi import ERROR_STATUSES

Operation = tuple[str, str]

SIGN_INS = {("post", "/api/login"), ("post", "/api/tokens")}
# A 409 that only a race can cause: provoked by its own test below.
RACED = ("post", "/api/things", 409)
PROVOKED_HERE = [
    (method, path, status)
    for (method, path), statuses in ERROR_STATUSES.items()
    for status in sorted(statuses)
    if status != 503 and (method, path, status) != RACED
]
# Public, but it revokes the session its credentials name, when sent some.
ENDS_A_SESSION = {("post", "/api/logout")}
UNAVAILABLE = [operation for operation, statuses in ERROR_STATUSES.items() if 503 in statuses]

VALID_BODIES: dict[Operation, dict[str, Any]] = {
    ("post", "/api/login"): {"username": "alice", "password": USER_PASSWORD},
    ("post", "/api/tokens"): {"username": "alice", "password": USER_PASSWORD},
    ("post", "/api/me/password"): {
        "current_password": USER_PASSWORD,
        "new_password": "a-new-password",
    },
    ("post", "/api/things"): {"title": "Water the plants"},
    ("patch", "/api/things/{thing_id}"): {"done": True},
    ("post", "/api/admin/users"): {"username": "bob", "password": "bob-password"},
    ("patch", "/api/admin/users/{user_id}"): {"is_active": True},
}
MAX_CONTENT_LENGTH: int = DEFAULTS["MAX_CONTENT_LENGTH"]
JSON = "application/json"


@dataclass
class World:
    """An app with a plain user, an admin, the user's thing, and ways to call as each."""

    app: Quart
    user: Account
    admin: Account
    user_token: dict[str, str]
    admin_token: dict[str, str]
    user_browser: Client  # the auth cookie, sent as the app's own JavaScript sends it
    thing_id: int

    def path(self, template: str, *, missing: bool = False) -> str:
        """*template* with the ids of existing rows, or (*missing*) of none."""
        ids = {"thing_id": self.thing_id, "user_id": self.user.id}
        return template.format_map(dict.fromkeys(ids, MAX_ID) if missing else ids)

    def token(self, template: str) -> dict[str, str]:
        """Bearer headers of whoever may use *template*: the admin for admin routes."""
        return self.admin_token if template.startswith("/api/admin/") else self.user_token


async def make_world(app: Quart) -> World:
    user = await add_user(app, "alice", USER_PASSWORD, UserType.USER)
    admin = await add_user(app, "root", "admin-password-1", UserType.ADMIN)
    client = app.test_client()
    user_token = await bearer_headers(client, user)
    thing = await client.post("/api/things", json={"title": "Feed the cat"}, headers=user_token)
    assert thing.status_code == 201
    return World(
        app=app,
        user=user,
        admin=admin,
        user_token=user_token,
        admin_token=await bearer_headers(client, admin),
        user_browser=await signed_in_client(app, user),
        thing_id=(await thing.get_json())["id"],
    )


@pytest.fixture
async def world(app: Quart) -> World:
    return await make_world(app)


async def send(
    client: Client,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    raw: tuple[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> Response:
    """One request: a JSON *body*, or a *raw* (content type, data) one, or none."""
    kwargs: dict[str, Any] = {"headers": dict(headers or {})}
    if body is not None:
        kwargs["json"] = body
    if raw is not None:
        content_type, data = raw
        # Quart's test client sends no Content-Length; HTTP clients do, and the CSRF
        # rule on non-JSON bodies (csrf.py) reads it.
        kwargs["headers"].update({"Content-Type": content_type, "Content-Length": str(len(data))})
        kwargs["data"] = data
    if query is not None:
        kwargs["query_string"] = query
    response: Response = await client.open(path, method=method.upper(), **kwargs)
    return response


async def provoke(world: World, method: str, template: str, status: int) -> Response:
    """A request that *method* on *template* answers with *status*, as documented."""
    key = (method, template)
    body = VALID_BODIES.get(key)
    path = world.path(template)
    token = world.token(template)
    anonymous = world.app.test_client()
    match status:
        case 400 if body is None:
            # Only DELETE /api/tokens/current: a cookie is not a bearer token.
            return await send(world.user_browser, method, path)
        case 400:
            return await send(anonymous, method, path, headers=token, raw=(JSON, '{"'))
        case 401 if key in SIGN_INS:
            assert body is not None
            return await send(anonymous, method, path, body={**body, "password": "wrong-one"})
        case 401:
            return await send(anonymous, method, path, body=body)
        case 403 if method == "get":
            # Admin routes, for a plain user.
            return await send(anonymous, method, path, headers=world.user_token)
        case 403:
            cross_site = {"Sec-Fetch-Site": "cross-site"}
            return await send(anonymous, method, path, headers=cross_site, body=body)
        case 404:
            missing = world.path(template, missing=True)
            return await send(anonymous, method, missing, headers=token, body=body)
        case 409:
            return await conflict(world, method, template)
        case 413:
            oversized = "x" * (MAX_CONTENT_LENGTH + 1)
            return await send(anonymous, method, path, headers=token, raw=(JSON, oversized))
        case 415:
            return await send(world.user_browser, method, path, raw=("text/plain", "hello"))
        case 422 if body is None:
            return await send(anonymous, method, path, headers=token, query={"limit": "0"})
        case 422:
            return await send(anonymous, method, path, headers=token, body={})
        case 429 if template.endswith("/events"):
            return await past_the_stream_cap(world, path)
        case 429:
            assert body is not None
            wrong = {**body, "password": "wrong-one"}
            # Ten a minute per username (rate_limits.SIGN_IN_LIMITS), the world's sign-in included.
            for _ in range(10):
                response = await send(anonymous, method, path, body=wrong)
                if response.status_code != 401:
                    return response
            return await send(anonymous, method, path, body=wrong)
    raise AssertionError(f"no way to provoke {status} on {method} {template}")


async def past_the_stream_cap(world: World, path: str) -> Response:
    """A stream asked for while its user has EVENT_STREAMS_PER_USER open."""
    client = world.app.test_client()
    headers = world.token(path)
    async with AsyncExitStack() as streams:
        for _ in range(world.app.config["EVENT_STREAMS_PER_USER"]):
            stream = await streams.enter_async_context(open_stream(client, path, headers))
            await stream.started()
        return await send(client, "get", path, headers=headers)


async def conflict(world: World, method: str, template: str) -> Response:
    """A 409 from the admin API: a taken name, or leaving no active admin."""
    client = world.app.test_client()
    own_path = f"/api/admin/users/{world.admin.id}"
    match (method, template):
        case ("post", "/api/admin/users"):
            taken = {"username": "ALICE", "password": "bob-password"}
            return await send(client, method, template, headers=world.admin_token, body=taken)
        case ("patch", "/api/admin/users/{user_id}"):
            demote = {"user_type": "user"}
            return await send(client, method, own_path, headers=world.admin_token, body=demote)
        case ("delete", "/api/admin/users/{user_id}"):
            return await send(client, method, own_path, headers=world.admin_token)
    raise AssertionError(f"no way to provoke 409 on {method} {template}")


async def assert_documented_error(
    response: Response, document: dict[str, Any], method: str, path: str, status: int
) -> None:
    """*response* is *status* as the document describes it for *method* on *path*:
    JSON, an ``Error`` body, and every header the shared error response requires.
    """
    body = await response.get_data(as_text=True)
    assert response.status_code == status, body
    assert response.mimetype == JSON
    assert Error.model_validate_json(body).error
    ref = document["paths"][path][method]["responses"][str(status)]["$ref"]
    shared = document["components"]["responses"][ref.rsplit("/", 1)[1]]
    for header, spec in shared.get("headers", {}).items():
        if spec["required"]:
            assert header in response.headers, (status, header)


async def openapi_document(app: Quart) -> dict[str, Any]:
    response = await app.test_client().get("/openapi.json")
    document: dict[str, Any] = await response.get_json()
    return document


@pytest.mark.parametrize(("method", "path", "status"), PROVOKED_HERE)
async def test_each_documented_status_is_what_a_request_gets(
    world: World, method: str, path: str, status: int
) -> None:
    response = await provoke(world, method, path, status)
    document = await openapi_document(world.app)
    await assert_documented_error(response, document, method, path, status)


@pytest.fixture
async def unreachable_world(postgres_url: str) -> AsyncIterator[World]:
    """A world whose PostgreSQL has just stopped answering (its relay is down)."""
    await reset_schema(postgres_url)
    relay = TcpRelay(target_port=5432)
    await relay.start()
    app = make_app(postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}"))
    try:
        async with app.test_app():
            world = await make_world(app)
            await relay.stop()
            yield world
    finally:
        await relay.stop()


@pytest.mark.parametrize(("method", "path"), UNAVAILABLE)
async def test_each_operation_documenting_503_gets_it_while_the_database_is_down(
    unreachable_world: World, method: str, path: str
) -> None:
    world = unreachable_world
    document = await openapi_document(world.app)  # built without the database
    credentials = "security" in document["paths"][path][method] or (method, path) in ENDS_A_SESSION
    response = await send(
        world.app.test_client(),
        method,
        world.path(path),
        headers=world.token(path) if credentials else None,
        body=VALID_BODIES.get((method, path)),
    )
    await assert_documented_error(response, document, method, path, 503)


async def test_a_thing_created_while_its_owner_is_deleted_is_a_409(postgres_url: str) -> None:
    """The documented 409 of POST /api/things, made deterministic with a row lock.

    The owner's row is locked, so the insert (which takes it FOR SHARE) waits; the
    owner is then deleted and the lock released, and the insert finds no owner.
    """
    await reset_schema(postgres_url)
    app = make_app(postgres_url)
    engine = build_engine(postgres_url)
    try:
        async with app.test_app():
            world = await make_world(app)
            document = await openapi_document(app)
            async with engine.connect() as deleter, engine.connect() as observer:
                await deleter.begin()
                owner = {"id": world.user.id}
                await deleter.execute(text("SELECT 1 FROM users WHERE id = :id FOR UPDATE"), owner)
                creating = asyncio.create_task(
                    send(
                        app.test_client(),
                        "post",
                        "/api/things",
                        headers=world.user_token,
                        body=VALID_BODIES[("post", "/api/things")],
                    )
                )
                await until_an_insert_waits_for_a_lock(observer)
                await deleter.execute(text("DELETE FROM users WHERE id = :id"), owner)
                await deleter.commit()
                response = await creating
    finally:
        await engine.dispose()
    await assert_documented_error(response, document, "post", "/api/things", 409)


async def until_an_insert_waits_for_a_lock(observer: AsyncConnection) -> None:
    """Return once a backend's INSERT INTO things waits for a row lock."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO things%'"
    )
    for _ in range(200):
        found = (await observer.execute(waiting)).scalar_one()
        # pg_stat_activity is read once per transaction: end it to read it anew.
        await observer.rollback()
        if found:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the insert never waited for the owner's row")
