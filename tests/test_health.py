"""Liveness and readiness."""

from __future__ import annotations

from tests.conftest import Client, TcpRelay, make_app


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


async def test_readyz_follows_the_database_down_and_back_up(postgres_url: str) -> None:
    relay = TcpRelay(target_port=5432)
    await relay.start()
    app = make_app(postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}"))
    try:
        async with app.test_app():
            client = app.test_client()
            assert (await client.get("/readyz")).status_code == 200
            await relay.stop()
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert await down.get_json() == {"error": "Database unavailable"}
            assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
            await relay.start()  # same port: the database is back
            up = await client.get("/readyz")
            assert up.status_code == 200
            assert await up.get_json() == {"status": "ready"}
    finally:
        await relay.stop()
