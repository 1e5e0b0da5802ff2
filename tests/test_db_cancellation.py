"""Cancellation at every await point of the data layer leaves nothing behind.

A client that hangs up makes Quart cancel its view wherever it is waiting: for a free
place in the pool, for a connection to open, for BEGIN, a statement, COMMIT or
ROLLBACK. ``cancelled_at`` runs an operation in this task and cancels it exactly at its
k-th suspension, as ``Task.cancel`` would there; each test does that for every k, on
both backends, then checks what is left: every place free, no connection in a
transaction or holding a lock, the next write committing at once, and the operation's
writes all there or none.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from quart import Quart
from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import make_url

from quart_app.data.database import db
from quart_app.data.models import Thing, UserType
from quart_app.data.statements import Query
from tests.helpers.apps import ADD_THING, add_user, make_app
from tests.helpers.cancelling import Oops, cancelled_at
from tests.helpers.live import (
    ADMIN_LIVE_PASSWORD,
    LiveServer,
    create_live_user,
    hypercorn_process,
    stop_process_group,
    token_for,
    wait_until_serving,
)
from tests.helpers.services import reset_schema
from tests.helpers.waiting import NeverHappened, eventually

_ADD_RETURNING = Query(
    insert(Thing)
    .values(owner_id=bindparam("owner_id"), title=bindparam("title"))
    .returning(Thing.id)
)
_ALL = Query(select(Thing.title))


@dataclass
class Subject:
    """A started app on one backend, with a user to own the things written."""

    app: Quart
    url: str
    owner_id: int

    async def left_behind(self) -> list[str]:
        """Every way the last operation's cancellation left the database worse off."""
        problems: list[str] = []
        async with self.app.app_context():
            pool = db.pool
            try:
                await asyncio.wait_for(pool.settled(), 5)
            except TimeoutError:
                problems.append("a connection was still being closed after 5 s")
            if pool.in_use:
                problems.append(f"{pool.in_use} place(s) of the pool still taken")
            problems += await _locks_held(self.url)
            try:
                # The next write, through the same pool: at once.
                async with asyncio.timeout(2):
                    await db.execute(ADD_THING, owner_id=self.owner_id, title="next")
                    async with db.transaction() as connection:
                        await connection.execute(ADD_THING, owner_id=self.owner_id, title="next")
            except TimeoutError:
                problems.append("the next write did not commit within 2 s")
        return problems

    async def titles(self) -> list[str]:
        async with self.app.app_context():
            return [row.title for row in await db.fetch(_ALL)]

    async def forget(self) -> None:
        """Close every pooled connection, so the next operation opens its own."""
        async with self.app.app_context():
            await db.pool.close()


async def _locks_held(url: str) -> list[str]:
    if url.startswith("sqlite"):
        # A write lock anywhere would make this fail at once (timeout 0).
        probe = sqlite3.connect(make_url(url).database or "", timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError as error:
            return [f"a connection still holds SQLite's write lock ({error})"]
        finally:
            probe.close()
        return []
    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(False)
    )
    idle = 0

    async def none_idle_in_a_transaction() -> bool:
        nonlocal idle
        idle = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
        )
        return not idle

    try:
        # A terminated backend takes a moment to notice.
        await eventually(none_idle_in_a_transaction, within=2)
    except NeverHappened:
        return [f"{idle} PostgreSQL session(s) idle in a transaction"]
    finally:
        await connection.close()
    return []


@pytest.fixture
async def subject(database_url: str) -> AsyncIterator[Subject]:
    await reset_schema(database_url)
    app = make_app(database_url, DATABASE_POOL_SIZE=2, DATABASE_POOL_TIMEOUT=30)
    async with app.test_app():
        owner = await add_user(app, "owner", "owner-password", UserType.USER)
        yield Subject(app, database_url, owner.id)


Operation = Callable[[Subject, str], Coroutine[Any, Any, None]]


async def _fetch(subject: Subject, tag: str) -> None:
    await db.fetch(_ALL)


async def _execute(subject: Subject, tag: str) -> None:
    await db.execute(ADD_THING, owner_id=subject.owner_id, title=f"{tag}-a")


async def _fetchrow_returning(subject: Subject, tag: str) -> None:
    await db.fetchrow(_ADD_RETURNING, owner_id=subject.owner_id, title=f"{tag}-a")


async def _transaction(subject: Subject, tag: str) -> None:
    async with db.transaction() as connection:
        await connection.execute(ADD_THING, owner_id=subject.owner_id, title=f"{tag}-a")
        await db.fetch(_ALL)  # a read of the caller's, on the transaction's connection
        await connection.execute(ADD_THING, owner_id=subject.owner_id, title=f"{tag}-b")


async def _rolled_back(subject: Subject, tag: str) -> None:
    async with db.transaction() as connection:
        await connection.execute(ADD_THING, owner_id=subject.owner_id, title=f"{tag}-a")
        await connection.execute(ADD_THING, owner_id=subject.owner_id, title=f"{tag}-b")
        raise Oops


# What each operation may leave stored: its titles all, or none; a rollback, none.
OPERATIONS: dict[str, tuple[Operation, list[list[str]]]] = {
    "fetch": (_fetch, [[]]),
    "execute": (_execute, [[], ["a"]]),
    "fetchrow_returning": (_fetchrow_returning, [[], ["a"]]),
    "transaction": (_transaction, [[], ["a", "b"]]),
    "rollback": (_rolled_back, [[]]),
}


async def _every_cancellation(
    subject: Subject,
    name: str,
    *,
    fresh: bool,
    others: Callable[[], Awaitable[list[asyncio.Task[None]]]] | None = None,
) -> int:
    """Cancel operation *name* at each of its suspensions in turn; return how many.

    *others* starts tasks of other requests first; they end before the checks.
    """
    operation, allowed = OPERATIONS[name]
    k = 0
    while True:
        tag = f"{name}-{k}"
        if fresh:
            await subject.forget()
        async with subject.app.app_context():
            started = await others() if others is not None else []
            cancelled = await cancelled_at(functools.partial(operation, subject, tag), k)
            await asyncio.gather(*started)
        if not cancelled:
            return k
        problems = await subject.left_behind()
        assert not problems, f"cancelled at suspension {k}: {problems}"
        written = sorted(
            title.removeprefix(f"{tag}-")
            for title in await subject.titles()
            if title.startswith(f"{tag}-")
        )
        assert written in allowed, f"cancelled at suspension {k}, stored {written}"
        k += 1
        assert k < 100, "the operation never finished"


@pytest.mark.parametrize("fresh", [True, False], ids=["opening", "reusing"])
@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_a_cancellation_at_any_await_leaves_nothing_behind(
    subject: Subject, name: str, fresh: bool
) -> None:
    points = await _every_cancellation(subject, name, fresh=fresh)
    if name != "fetch":  # a SQLite read may run on the loop's thread, without a wait
        assert points >= 1, "no suspension: the harness cancelled nothing"
    if fresh and name in {"transaction", "rollback"}:
        # Opening (connect, settings), BEGIN, the statements, COMMIT or ROLLBACK.
        assert points >= 6, points
    assert await subject.left_behind() == []


async def test_a_cancellation_while_waiting_for_a_place_leaves_nothing_behind(
    subject: Subject,
) -> None:
    """Both places held by others: the operation first waits in line for one."""

    async def hold_both() -> list[asyncio.Task[None]]:
        async def hold() -> None:
            async with subject.app.app_context(), db.connection():
                await asyncio.sleep(0.05)

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        # Both holders have their place (each keeps it for 0.05 s: checked at every turn).
        await eventually(lambda: db.pool.in_use == 2, within=1, every=0, what="both held")
        return holders

    points = await _every_cancellation(subject, "transaction", fresh=False, others=hold_both)
    assert points >= 4
    assert await subject.left_behind() == []


# --- the same, served: a storm of clients hanging up mid-request ------------------------


def _raw_request(method: str, path: str, token: str, body: dict[str, Any] | None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _hang_up(port: int, request: bytes, after: float, rudely: bool, cut: int) -> None:
    """Send *request* but its last *cut* bytes (mid-body when it has one), then go away
    *after* seconds, as an aborted browser request does."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request[: len(request) - cut])
    await writer.drain()
    await asyncio.sleep(after)
    if rudely:
        writer.transport.abort()  # RST
    else:
        writer.close()


@pytest.mark.live
@pytest.mark.server_env(QUART_RATE_LIMIT_ENABLED="false")
# Two workers, as production: on SQLite a transaction left open in one blocks the other's.
@pytest.mark.workers(2)
async def test_clients_hanging_up_mid_request_never_wedge_writes(
    base_url: str, server: LiveServer, server_env: dict[str, str], tmp_path: Path
) -> None:
    """Admin changes (transactions), writes and reads from clients that leave 0-60 ms after
    sending (a quarter of them before their body is complete), while one well-behaved
    client keeps creating things. Every one of its writes is acknowledged, a fresh write
    right after the storm too, and all of them are still there once the server has
    restarted."""
    port = int(base_url.rsplit(":", 1)[1])
    targets = [await create_live_user(base_url, f"target{n}", "target-password") for n in range(4)]
    await create_live_user(base_url, "writer", "writer-password")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        admin_headers = await token_for(client, "admin", ADMIN_LIVE_PASSWORD)
        writer = await token_for(client, "writer", "writer-password")
    admin = admin_headers["Authorization"].removeprefix("Bearer ")
    writer_token = writer["Authorization"].removeprefix("Bearer ")
    acknowledged: dict[int, str] = {}
    refused: list[str] = []
    storming = True

    async def well_behaved() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            n = 0
            while storming:
                title = f"good {n}"
                answer = await client.post("/api/things", json={"title": title}, headers=writer)
                if answer.status_code == 201:
                    acknowledged[answer.json()["id"]] = title
                else:
                    refused.append(f"{answer.status_code} {answer.text}")
                n += 1

    rng = random.Random(18)  # noqa: S311 - timings, not secrets
    requests = [
        *(
            _raw_request("PATCH", f"/api/admin/users/{target}", admin, {"is_active": active})
            for target in targets
            for active in (False, True)
        ),
        _raw_request("POST", "/api/things", writer_token, {"title": "storm"}),
        _raw_request("GET", "/api/things?limit=100", writer_token, None),
    ]
    good = asyncio.create_task(well_behaved())
    for _round in range(12):
        await asyncio.gather(
            *(
                _hang_up(
                    port,
                    rng.choice(requests),
                    rng.uniform(0, 0.06),
                    rudely=rng.random() < 0.5,
                    cut=rng.choice([0, 0, 0, 5]),  # a quarter leave mid-body
                )
                for _ in range(40)
            )
        )
    storming = False
    await good

    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        after = await client.post("/api/things", json={"title": "after"}, headers=writer)
    assert after.status_code == 201, after.text
    acknowledged[after.json()["id"]] = "after"
    assert refused == []
    assert len(acknowledged) > 1

    stop_process_group(server.process)
    with hypercorn_process(server_env, tmp_path, "restarted") as restarted:
        await wait_until_serving(restarted)
        async with httpx.AsyncClient(base_url=restarted.url, timeout=10) as client:
            headers = await token_for(client, "writer", "writer-password")
            stored = {}
            for offset in range(0, 10_000, 100):
                page = await client.get(f"/api/things?limit=100&offset={offset}", headers=headers)
                items = page.json()["items"]
                stored.update({item["id"]: item["title"] for item in items})
                if len(items) < 100:
                    break
    assert {thing_id: stored.get(thing_id) for thing_id in acknowledged} == acknowledged
