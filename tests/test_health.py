"""Liveness and readiness."""

from __future__ import annotations

from tests.conftest import Client, make_app


async def test_healthz_answers_200(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok"}


async def test_readyz_is_503_json_when_the_database_does_not_answer() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    app = make_app("postgresql+asyncpg://postgres@127.0.0.1:1/test")
    async with app.test_app():
        response = await app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    assert await response.get_json() == {"error": "Database unavailable"}
