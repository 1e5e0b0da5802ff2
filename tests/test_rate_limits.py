"""Sign-in rate limits: per client address and per username, shared through Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from quart import Response
from redis import asyncio as aioredis

from quart_app.data.models import UserType
from quart_app.security import rate_limits
from quart_app.security.rate_limits import ExpiringMemoryStore
from tests.helpers.apps import Account, Client, add_user, make_app, submit_form
from tests.helpers.live import free_port
from tests.helpers.services import reset_schema

PER_USERNAME, PER_ADDRESS = 10, 30


async def attempt(
    client: Client, username: str, *, path: str = "/api/login", address: str = "192.0.2.1"
) -> Response:
    response: Response = await client.post(
        path,
        json={"username": username, "password": "wrong-password"},
        scope_base={"client": (address, 40000)},
    )
    return response


def assert_limited(response: Response) -> None:
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("path", ["/api/login", "/api/tokens"])
async def test_too_many_attempts_for_one_username_get_429(
    client: Client, user: Account, path: str
) -> None:
    for _ in range(PER_USERNAME):
        assert (await attempt(client, "alice", path=path)).status_code == 401
    limited = await attempt(client, "ALICE", path=path)  # same account, any case
    assert_limited(limited)
    assert await limited.get_json() == {"error": "Too Many Requests"}
    assert limited.headers["RateLimit-Limit"] in {str(PER_USERNAME), str(PER_ADDRESS)}
    # Even the right password waits: the limit counts attempts, not failures.
    right = await client.post(
        path,
        json={"username": "alice", "password": user.password},
        scope_base={"client": ("192.0.2.99", 40000)},
    )
    assert_limited(right)
    # Another name from the same address is not affected.
    assert (await attempt(client, "bob", path=path)).status_code == 401


async def test_too_many_attempts_from_one_address_get_429(client: Client) -> None:
    for n in range(PER_ADDRESS):
        assert (await attempt(client, f"name{n}")).status_code == 401
    assert_limited(await attempt(client, "one-more"))
    assert (await attempt(client, "one-more", address="192.0.2.2")).status_code == 401


async def test_a_forged_forwarded_for_header_does_not_reset_the_address_limit(
    client: Client,
) -> None:
    for n in range(PER_ADDRESS):
        response = await client.post(
            "/api/login",
            json={"username": f"name{n}", "password": "x"},
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        )
        assert response.status_code == 401
    assert_limited(await client.post("/api/login", json={"username": "last", "password": "x"}))


async def test_answers_carry_ratelimit_headers(client: Client) -> None:
    response = await attempt(client, "alice")
    assert response.headers["RateLimit-Limit"] == str(PER_USERNAME)
    assert response.headers["RateLimit-Remaining"] == str(PER_USERNAME - 1)
    assert "RateLimit-Reset" in response.headers


async def test_the_sign_in_form_is_limited_too(client: Client, user: Account) -> None:
    for _ in range(PER_USERNAME):
        response = await submit_form(client, "/login", {"username": "alice", "password": "nope"})
        assert response.status_code == 200
    limited = await submit_form(client, "/login", {"username": "alice", "password": "nope"})
    assert_limited(limited)
    assert limited.mimetype == "text/html"
    assert (await client.get("/login")).status_code == 200  # showing the form is free


async def test_a_padded_name_on_the_form_counts_against_the_same_user(
    client: Client, user: Account
) -> None:
    for _ in range(PER_USERNAME):
        response = await submit_form(client, "/login", {"username": "alice", "password": "nope"})
        assert response.status_code == 200
    # A name past the column width used to be cut to 64 characters after the limiter
    # had keyed on all of it: the cut-off spaces were stripped and alice signed in.
    padded = "alice" + " " * 59 + "zz"
    response = await submit_form(client, "/login", {"username": padded, "password": user.password})
    assert response.status_code != 302
    assert "Location" not in response.headers
    assert (await client.get("/api/me")).status_code == 401


async def test_limits_can_be_switched_off(database_url: str) -> None:
    # This test says so: RATE_LIMIT_ENABLED=False removes the limits.
    await reset_schema(database_url)
    app = make_app(database_url, RATE_LIMIT_ENABLED=False)
    async with app.test_app():
        client = app.test_client()
        for _ in range(PER_USERNAME + 2):
            assert (await attempt(client, "alice")).status_code == 401


async def test_the_memory_store_forgets_reset_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limits, "_MEMORY_SWEEP_THRESHOLD", 5)
    store = ExpiringMemoryStore()
    past = datetime.now(UTC) - timedelta(seconds=1)
    future = datetime.now(UTC) + timedelta(minutes=1)
    for n in range(5):
        await store.set(f"old{n}", past)
    await store.set("live", future)
    assert await store.get("live", past) == future
    assert await store.get("old0", future) == future  # swept, so the default comes back


async def test_instances_sharing_redis_share_the_limits(
    database_url: str, redis_url: str, user: Account
) -> None:
    config: dict[str, Any] = {"RATE_LIMIT_STORAGE_URL": redis_url}
    first, second = make_app(database_url, **config), make_app(database_url, **config)
    async with first.test_app(), second.test_app():
        a, b = first.test_client(), second.test_client()
        for n in range(PER_USERNAME):
            assert (await attempt(a if n % 2 else b, "alice")).status_code == 401
        assert_limited(await attempt(a, "alice"))
        assert_limited(await attempt(b, "alice"))

    redis = aioredis.from_url(redis_url)
    try:
        keys = await redis.keys("*username:alice*")
        assert keys
        ttl = await redis.ttl(keys[0])
        # The key goes away once the limit has reset: at most the 60 s period ahead,
        # rounded up to the next second, plus one.
        assert 0 < ttl <= 62
    finally:
        await redis.aclose()


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """The redis:// URL of a server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    server.close()
    for writer in held:
        writer.close()


@pytest.mark.parametrize("store", ["refusing", "silent"])
async def test_an_unreachable_store_answers_sign_ins_with_a_prompt_503(
    database_url: str, silent_server: str, store: str
) -> None:
    url = silent_server if store == "silent" else f"redis://127.0.0.1:{free_port()}/0"
    await reset_schema(database_url)
    app = make_app(database_url, RATE_LIMIT_STORAGE_URL=url)
    async with app.test_app():
        await add_user(app, "alice", "alice-password", UserType.USER)
        client = app.test_client()
        # Two attempts (one retry) of RATE_LIMIT_STORAGE_TIMEOUT (1 s) each, plus slack;
        # redis-py's defaults would wait on a silent server for ever.
        async with asyncio.timeout(2 * app.config["RATE_LIMIT_STORAGE_TIMEOUT"] + 3):
            api = await client.post("/api/tokens", json={"username": "alice", "password": "x"})
        async with asyncio.timeout(2 * app.config["RATE_LIMIT_STORAGE_TIMEOUT"] + 3):
            form = await submit_form(client, "/login", {"username": "alice", "password": "x"})
        # Routes without limits never touch the store.
        status = await client.get("/api/status")
    assert api.status_code == 503
    assert await api.get_json() == {"error": "Rate-limit store unavailable"}
    assert api.headers["Retry-After"] == "5"
    assert form.status_code == 503
    assert form.mimetype == "text/html"
    assert status.status_code == 200
