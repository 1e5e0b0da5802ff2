"""Sign-in sessions in the database: pruned automatically and by the CLI, never resurrected."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from quart import Quart
from sqlalchemy import bindparam, select, update

from quart_app.data.base import utcnow
from quart_app.data.database import db
from quart_app.data.models import AuthSession, UserType
from quart_app.data.session_store import hash_session_id
from quart_app.data.statements import Query
from quart_app.security.auth import app_auth
from tests.helpers.apps import Account, Client, add_user, bearer_headers, make_app, stored
from tests.helpers.services import reset_schema
from tests.helpers.waiting import eventually

_EXPIRE = Query(
    update(AuthSession)
    .where(AuthSession.id_hash == bindparam("id_hash"))
    .values(expires_at=bindparam("at"))
)


def _session_id(headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    session_id = app_auth().load_token(token)
    assert session_id is not None
    return session_id


async def three_sessions(app: Quart, client: Client, user: Account) -> dict[str, dict[str, str]]:
    """A live, an expired and a revoked bearer session of *user*."""
    sessions = {name: await bearer_headers(client, user) for name in ("live", "expired", "revoked")}
    async with app.app_context():
        expired = hash_session_id(_session_id(sessions["expired"]))
        await db.execute(_EXPIRE, id_hash=expired, at=utcnow() - timedelta(seconds=1))
    revoked = await client.delete("/api/tokens/current", headers=sessions["revoked"])
    assert revoked.status_code == 204
    return sessions


async def session_hashes(app: Quart) -> set[str]:
    return {row["id_hash"] for row in await stored(app, select(AuthSession.id_hash))}


async def test_prune_deletes_expired_and_revoked_sessions_only(
    database_url: str, app: Quart, client: Client, user: Account
) -> None:
    sessions = await three_sessions(app, client, user)
    async with app.app_context():
        live = hash_session_id(_session_id(sessions["live"]))
    assert len(await session_hashes(app)) == 3

    # The command runs as it would from a timer: its own app, its own event loop.
    runner = make_app(database_url).test_cli_runner()
    result = await asyncio.to_thread(runner.invoke, args=["prune-sessions"])

    assert result.exit_code == 0, result.output
    assert "Deleted 2 " in result.output
    assert await session_hashes(app) == {live}
    statuses = {
        name: (await client.get("/api/me", headers=headers)).status_code
        for name, headers in sessions.items()
    }
    assert statuses == {"live": 200, "expired": 401, "revoked": 401}


async def _one_session_left(app: Quart) -> bool:
    return len(await session_hashes(app)) == 1


async def test_serving_app_prunes_on_its_own(database_url: str) -> None:
    await reset_schema(database_url)
    app = make_app(database_url, SESSION_PRUNE_INTERVAL=0.2)
    async with app.test_app():
        user = await add_user(app, "alice", "alice-password", UserType.USER)
        client = app.test_client()
        await three_sessions(app, client, user)
        await eventually(lambda: _one_session_left(app), within=10, what="the sessions pruned")
        fresh = await bearer_headers(client, user)
        assert (await client.get("/api/me", headers=fresh)).status_code == 200


@pytest.mark.parametrize("interval", [0, -1])
async def test_pruning_can_be_turned_off(database_url: str, interval: float) -> None:
    await reset_schema(database_url)
    app = make_app(database_url, SESSION_PRUNE_INTERVAL=interval)
    async with app.test_app():
        user = await add_user(app, "alice", "alice-password", UserType.USER)
        await three_sessions(app, app.test_client(), user)
        await asyncio.sleep(0.5)
        assert len(await session_hashes(app)) == 3
