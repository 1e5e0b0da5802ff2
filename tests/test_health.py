"""Liveness and readiness."""

from __future__ import annotations

from quart_app.data.models import UserType
from tests.helpers.apps import Account, Client, add_user, bearer_headers, make_app, signed_in_client
from tests.helpers.relay import TcpRelay
from tests.helpers.services import reset_schema


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
    assert response.headers["Retry-After"] == "1"
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


async def test_requests_while_the_database_is_down_get_503_and_recover(
    postgres_url: str,
) -> None:
    await reset_schema(postgres_url)
    relay = TcpRelay(target_port=5432)
    await relay.start()
    app = make_app(
        postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}"),
        PROPAGATE_EXCEPTIONS=False,
    )
    try:
        async with app.test_app():
            await add_user(app, "alice", "alice-password", UserType.USER)
            client = app.test_client()
            alice = Account(0, "alice", "alice-password")
            token = await bearer_headers(client, alice)
            browser = await signed_in_client(app, alice)
            assert (await client.get("/api/things", headers=token)).status_code == 200
            await relay.stop()
            down = await client.get("/api/things", headers=token)
            page = await browser.get("/")  # looking up the signed-in session needs the database
            await relay.start()
            back = await client.get("/api/things", headers=token)
    finally:
        await relay.stop()
    assert down.status_code == 503
    assert await down.get_json() == {"error": "Database unavailable"}
    assert down.headers["Retry-After"] == "1"
    assert page.status_code == 503
    assert page.mimetype == "text/html"
    assert back.status_code == 200
