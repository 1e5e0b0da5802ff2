"""Two hypercorn instances, 2 workers each, sharing one PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from quart_app.data.database import build_engine
from quart_app.data.models import Thing
from tests.helpers.live import (
    ADMIN_LIVE_PASSWORD,
    hypercorn_process,
    prepare_server_env,
    wait_until_serving,
)

pytestmark = pytest.mark.live
COOKIE = "quart_app_auth"
CONCURRENT_CREATES = 200  # split over both instances


@pytest.fixture
async def instances(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[str, str]]:
    env = await prepare_server_env(postgres_url, tmp_path, QUART_RATE_LIMIT_STORAGE_URL=redis_url)
    with (
        hypercorn_process(env, tmp_path, "instance-a", workers=2) as a,
        hypercorn_process(env, tmp_path, "instance-b", workers=2) as b,
    ):
        await asyncio.gather(wait_until_serving(a), wait_until_serving(b))
        yield a.url, b.url


async def test_sessions_and_tokens_hold_on_every_instance(instances: tuple[str, str]) -> None:
    a_url, b_url = instances
    credentials = {"username": "admin", "password": ADMIN_LIVE_PASSWORD}
    async with httpx.AsyncClient(base_url=a_url) as a, httpx.AsyncClient(base_url=b_url) as b:
        signed_in = await a.post("/api/login", json=credentials)
        assert signed_in.status_code == 200
        cookie = {"Cookie": f"{COOKIE}={signed_in.cookies[COOKIE]}"}
        a.cookies.clear()

        token = (await a.post("/api/tokens", json=credentials)).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}

        assert (await b.get("/api/me", headers=cookie)).status_code == 200
        assert (await b.get("/api/me", headers=bearer)).status_code == 200

        # Sign out on B: A refuses the cookie on its very next request.
        out = await b.post("/api/logout", headers={**cookie, "Origin": b_url, **json_type()})
        assert out.status_code == 204
        assert (await a.get("/api/me", headers=cookie)).status_code == 401

        # Revoke the token on B: A refuses it too.
        assert (await b.delete("/api/tokens/current", headers=bearer)).status_code == 204
        assert (await a.get("/api/me", headers=bearer)).status_code == 401


def json_type() -> dict[str, str]:
    return {"Content-Type": "application/json"}


async def test_sign_in_limits_are_counted_across_instances(instances: tuple[str, str]) -> None:
    a_url, b_url = instances
    guess = {"username": "admin", "password": "a-wrong-guess"}
    async with httpx.AsyncClient(base_url=a_url) as a, httpx.AsyncClient(base_url=b_url) as b:
        answers = [await (a if n % 2 else b).post("/api/login", json=guess) for n in range(10)]
        assert [answer.status_code for answer in answers] == [401] * 10
        assert (await a.post("/api/login", json=guess)).status_code == 429
        assert (await b.post("/api/login", json=guess)).status_code == 429


async def test_concurrent_creates_from_both_instances_are_stored_exactly_once(
    instances: tuple[str, str], postgres_url: str
) -> None:
    a_url, b_url = instances
    async with httpx.AsyncClient(base_url=a_url) as a, httpx.AsyncClient(base_url=b_url) as b:
        token = await a.post(
            "/api/tokens", json={"username": "admin", "password": ADMIN_LIVE_PASSWORD}
        )
        bearer = {"Authorization": f"Bearer {token.json()['token']}"}
        gate = asyncio.Semaphore(32)  # bounded load: 32 requests in flight at most

        async def create(client: httpx.AsyncClient, n: int) -> httpx.Response:
            async with gate:
                return await client.post("/api/things", json={"title": f"n{n}"}, headers=bearer)

        answers = await asyncio.gather(
            *(create(a if n % 2 else b, n) for n in range(CONCURRENT_CREATES))
        )
    created = [answer.json() for answer in answers if answer.status_code == 201]
    assert len(created) == CONCURRENT_CREATES, {answer.status_code for answer in answers}

    engine = build_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            stored = (await connection.execute(select(Thing.id, Thing.title))).all()
    finally:
        await engine.dispose()
    assert sorted(row.id for row in stored) == sorted(thing["id"] for thing in created)
    assert sorted(row.title for row in stored) == sorted(f"n{n}" for n in range(CONCURRENT_CREATES))
