"""The database layer: one fair place per pooled connection, given back after every request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from quart_app.models import UserType
from tests.conftest import Account, Client, add_user, bearer_headers, make_app, reset_schema


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[tuple[Client, dict[str, str]]]:
    """A client and a bearer token, on an app whose pool holds a single connection."""
    await reset_schema(database_url)
    app = make_app(database_url, DATABASE_POOL_SIZE=1, DATABASE_MAX_OVERFLOW=0)
    async with app.test_app():
        await add_user(app, "alice", "alice-password", UserType.USER)
        client = app.test_client()
        yield client, await bearer_headers(client, Account(0, "alice", "alice-password"))


async def test_places_are_given_back_after_every_request(
    one_connection: tuple[Client, dict[str, str]],
) -> None:
    client, token = one_connection
    # With one place, a place kept after any of these would hang the next request.
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/things/424242", {}),
        ("POST", "/api/things", {"json": {"title": ""}}),
        ("GET", "/api/no/such/route", {}),
        ("GET", "/api/things", {}),
    ]
    answers = [
        await asyncio.wait_for(client.open(path, method=method, headers=token, **body), 10)
        for method, path, body in requests
    ]
    assert [answer.status_code for answer in answers] == [404, 422, 404, 200]


async def test_concurrent_requests_share_a_small_pool(
    one_connection: tuple[Client, dict[str, str]],
) -> None:
    client, token = one_connection
    answers = await asyncio.wait_for(
        asyncio.gather(*(client.get("/api/me", headers=token) for _ in range(20))), 30
    )
    assert {answer.status_code for answer in answers} == {200}
