"""argon2id hashing, off the event loop."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from quart import Quart
from sqlalchemy import select

from quart_app.data.models import User, UserType
from quart_app.security.passwords import passwords
from tests.helpers.apps import USER_PASSWORD, Account, Client, add_user, make_app, stored


async def test_hashes_are_argon2id_with_the_configured_costs(app: Quart) -> None:
    async with app.app_context():
        hashed = await passwords.hash("correct horse")
        assert hashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
        assert await passwords.verify(hashed, "correct horse")
        assert not await passwords.verify(hashed, "wrong horse")
        assert not await passwords.verify("not a hash", "correct horse")


async def test_production_stores_argon2id_hashes_with_the_documented_costs(
    production_app: Quart,
) -> None:
    account = await add_user(production_app, "alice", USER_PASSWORD, UserType.USER)
    rows = await stored(production_app, select(User.password_hash).where(User.id == account.id))
    costs = extract_parameters(rows[0]["password_hash"])
    # The README's defaults: 3 passes over 64 MiB, above OWASP's 2 passes over 19 MiB.
    assert (costs.type, costs.time_cost, costs.memory_cost, costs.parallelism) == (
        Type.ID,
        3,
        64 * 1024,
        1,
    )


async def test_a_login_does_not_stall_other_requests(
    app: Quart, user: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The verification (a call-through spy) waits until a /api/status request has
    # completed. In a worker thread that happens; on the event loop nothing else can
    # run, the wait times out, and the test fails.
    entered = threading.Event()
    status_done = threading.Event()
    released_by_status: list[bool] = []
    real_verify = PasswordHasher.verify

    def gated_verify(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        entered.set()
        released_by_status.append(status_done.wait(timeout=5))
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", gated_verify)
    client = app.test_client()

    async def status_while_hashing() -> int:
        for _ in range(500):
            if entered.is_set():
                break
            await asyncio.sleep(0.01)
        response = await client.get("/api/status")
        status_done.set()
        return response.status_code

    login, status = await asyncio.gather(
        client.post("/api/login", json={"username": user.username, "password": user.password}),
        status_while_hashing(),
    )
    assert (login.status_code, status) == (200, 200)
    assert released_by_status == [True]


async def test_a_hash_made_with_old_costs_is_upgraded_at_login(
    database_url: str, user: Account, app: Quart
) -> None:
    stronger = make_app(database_url, ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=2048)
    async with stronger.test_app():
        response = await stronger.test_client().post(
            "/api/login", json={"username": user.username, "password": user.password}
        )
        assert response.status_code == 200
        rows = await stored(stronger, select(User.password_hash).where(User.id == user.id))
    assert "m=2048,t=2" in rows[0]["password_hash"]


async def test_the_api_never_shows_a_hash(admin_client: Client, user: Account) -> None:
    text = await (await admin_client.get("/api/admin/users")).get_data(as_text=True)
    assert "argon2" not in text


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priority is Linux-only")
async def test_hashing_runs_at_the_lowest_priority(
    client: Client, user: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call-through spy records the scheduling priority of the thread doing the hash.
    priorities: list[int] = []
    real_verify = PasswordHasher.verify

    def recording_verify(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", recording_verify)
    response = await client.post(
        "/api/login", json={"username": user.username, "password": user.password}
    )
    assert response.status_code == 200
    assert priorities == [19]
