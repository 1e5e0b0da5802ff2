"""The database layer: pooled connections are given back after every statement."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import func, literal, select

from quart_app.db import READ_HERE_SECONDS, Query, Row, db
from quart_app.models import User, UserType
from tests.helpers.apps import Account, Client, add_user, bearer_headers, make_app
from tests.helpers.services import reset_schema

_ONE = Query(select(literal(1).label("one")))


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[tuple[Client, dict[str, str]]]:
    """A client and a bearer token, on an app whose pool holds a single connection."""
    await reset_schema(database_url)
    app = make_app(database_url, DATABASE_POOL_SIZE=1)
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


async def test_a_freed_connection_goes_to_the_request_that_waited_longest(
    one_connection: tuple[Client, dict[str, str]],
) -> None:
    """First come, first served: a request arriving as a connection comes free does not
    take it from the requests already waiting, whatever the driver's own queue does."""
    client, _token = one_connection
    app = client.app
    freed = asyncio.Event()
    served: list[int] = []

    async def hold() -> None:
        async with app.app_context(), db.connection():
            await freed.wait()

    async def use(n: int) -> None:
        async with app.app_context(), db.connection() as connection:
            served.append(n)
            await connection.fetch(_ONE)

    holder = asyncio.create_task(hold())
    waiting = []
    for n in range(10):
        waiting.append(asyncio.create_task(use(n)))
        await asyncio.sleep(0.01)  # each joins the line in turn
    freed.set()
    latecomers = [asyncio.create_task(use(n)) for n in range(10, 20)]
    await asyncio.wait_for(asyncio.gather(holder, *waiting, *latecomers), 30)
    assert served == list(range(20))


async def test_database_echo_logs_every_statement_with_its_arguments(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await reset_schema(database_url)
    app = make_app(database_url, DATABASE_ECHO=True)
    async with app.test_app():
        with caplog.at_level(logging.INFO, logger="quart_app.sql"):
            await add_user(app, "alice", "alice-password", UserType.USER)
    logged = [record.getMessage() for record in caplog.records if record.name == "quart_app.sql"]
    assert any("INSERT INTO users" in line and "'alice'" in line for line in logged), logged


async def test_statements_are_not_logged_by_default(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="quart_app.sql"):
        await add_user(app, "alice", "alice-password", UserType.USER)
    assert not [record for record in caplog.records if record.name == "quart_app.sql"]


async def test_a_sqlite_file_that_cannot_be_opened_answers_503(tmp_path: Path) -> None:
    app = make_app(f"sqlite+aiosqlite:///{tmp_path / 'missing-directory' / 'db.sqlite3'}")
    async with app.test_app():
        response = await app.test_client().post(
            "/api/tokens", json={"username": "alice", "password": "alice-password"}
        )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.get_json()) == {"error": "Database unavailable"}


def test_a_failed_sqlite_open_leaves_no_thread_behind(tmp_path: Path) -> None:
    """The 503 above, each time on a loop that closes right after: no worker outlives it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing-directory' / 'db.sqlite3'}"
    stray: list[BaseException | None] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda hook_args: stray.append(hook_args.exc_value)

    async def one_refused_request() -> int:
        app = make_app(url)
        async with app.test_app():
            response = await app.test_client().post(
                "/api/tokens", json={"username": "alice", "password": "alice-password"}
            )
        return response.status_code

    try:
        # Unfixed, about a third of these runs left a thread failing on the closed loop.
        statuses = {asyncio.run(one_refused_request()) for _ in range(40)}
    finally:
        threading.excepthook = previous_hook
    assert statuses == {503}
    assert stray == []


# --- SQLite reads on the event loop's own thread ---------------------------------------

_USERNAMES = Query(select(User.username).order_by(User.id))


def _counting_to(n: int) -> Query[Row]:
    """A read that takes SQLite a while: counting to *n* with a recursive CTE."""
    numbers = select(literal(1).label("x")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.x + 1).where(numbers.c.x < n))
    return Query(select(func.count().label("total")).select_from(numbers))


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[tuple[Quart, Path]]:
    """A started app on a SQLite file holding one user, and that file's path."""
    path = tmp_path / "reads.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    await reset_schema(url)
    app = make_app(url)
    async with app.test_app():
        await add_user(app, "alice", "alice-password", UserType.USER)
        yield app, path


async def test_a_long_read_leaves_the_loop_free_and_still_answers(
    sqlite_app: tuple[Quart, Path],
) -> None:
    """A read past READ_HERE_SECONDS is interrupted and finished on a pooled connection,
    so other requests of the worker go on meanwhile."""
    app, _path = sqlite_app
    gaps: list[float] = []
    reading = True

    async def tick() -> None:
        last = time.perf_counter()
        while reading:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    async with app.app_context():
        row = await db.fetchrow(_counting_to(1_000_000))
    took = time.perf_counter() - started
    reading = False
    await ticker
    assert row == {"total": 1_000_000}
    assert took > 10 * READ_HERE_SECONDS  # long enough to show the difference
    assert gaps, "the loop never ran while the read did"
    assert max(gaps) < took / 2


async def test_a_read_does_not_see_or_wait_for_an_uncommitted_write(
    sqlite_app: tuple[Quart, Path],
) -> None:
    app, path = sqlite_app
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE users SET username = 'mallory'")
        async with app.app_context():
            rows = await asyncio.wait_for(db.fetch(_USERNAMES), 1)
        assert rows == [{"username": "alice"}]
        writer.execute("COMMIT")
        async with app.app_context():
            assert await db.fetch(_USERNAMES) == [{"username": "mallory"}]
    finally:
        writer.close()
