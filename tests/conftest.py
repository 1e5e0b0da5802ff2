"""Shared fixtures: an app per database backend, clients signed in as a user and an admin.

The plain helpers the tests import live in tests/helpers/.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from quart import Quart
from redis import asyncio as aioredis

from quart_app import create_app
from quart_app.data.models import UserType
from tests.helpers.apps import (
    ADMIN_PASSWORD,
    USER_PASSWORD,
    Account,
    Client,
    add_user,
    make_app,
    signed_in_client,
)
from tests.helpers.live import LiveServer, hypercorn_process, prepare_server_env, wait_until_serving
from tests.helpers.services import (
    IN_CI,
    POSTGRES_URL,
    REDIS_URL,
    create_worker_database,
    postgres_answers,
    reset_schema,
    skip_or_fail,
)

# Chromium and the page helpers of the browser tests.
pytest_plugins = ["tests.chromium"]

# CI runs the same Hypothesis examples every time; timing deadlines mean little on 2 cores.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if IN_CI else "dev")


def pytest_configure(config: pytest.Config) -> None:
    """Each xdist worker starts on a PostgreSQL database of its own."""
    asyncio.run(create_worker_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend; PostgreSQL skips (or fails in CI) when absent."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    if not postgres_answers():
        skip_or_fail("PostgreSQL does not answer on 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[Quart]:
    """A started app on an empty schema."""
    await reset_schema(database_url)
    application = make_app(database_url)
    async with application.test_app():
        yield application


@pytest.fixture
async def production_app(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Quart]:
    """A started app on an empty schema, configured as in production: not testing, the
    defaults throughout, only a real secret and the database given."""
    for name in [name for name in os.environ if name.startswith("QUART_")]:
        monkeypatch.delenv(name)
    await reset_schema(database_url)
    application = create_app(
        {
            "SECRET_KEY": "a-production-secret-key-of-48-characters-or-more",
            "DATABASE_URL": database_url,
        }
    )
    async with application.test_app():
        yield application


@pytest.fixture
def client(app: Quart) -> Client:
    """An anonymous test client."""
    return app.test_client()


@pytest.fixture
async def user(app: Quart) -> Account:
    """A plain user."""
    return await add_user(app, "alice", USER_PASSWORD, UserType.USER)


@pytest.fixture
async def admin(app: Quart) -> Account:
    """An admin."""
    return await add_user(app, "root", ADMIN_PASSWORD, UserType.ADMIN)


@pytest.fixture
async def user_client(app: Quart, user: Account) -> Client:
    """A client signed in as the plain user."""
    return await signed_in_client(app, user)


@pytest.fixture
async def admin_client(app: Quart, admin: Account) -> Client:
    """A client signed in as the admin."""
    return await signed_in_client(app, admin)


@pytest.fixture
async def server_env(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> dict[str, str]:
    """The live server's environment; ``@pytest.mark.server_env(NAME="value")`` adds to it."""
    marker = request.node.get_closest_marker("server_env")
    return await prepare_server_env(database_url, tmp_path, **(marker.kwargs if marker else {}))


@pytest.fixture
def server(
    request: pytest.FixtureRequest, server_env: dict[str, str], tmp_path: Path
) -> Iterator[LiveServer]:
    """One live server (its log is ``tmp_path / "hypercorn.log"``); one worker, or as many
    as ``@pytest.mark.workers(n)`` asks."""
    marker = request.node.get_closest_marker("workers")
    workers = int(marker.args[0]) if marker else 1
    with hypercorn_process(server_env, tmp_path, "hypercorn", workers=workers) as live:
        yield live


@pytest.fixture
async def base_url(server: LiveServer) -> str:
    """The URL of the live server, once it serves."""
    await wait_until_serving(server)
    return server.url


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """An emptied Redis database for the test; skips (fails in CI) without Redis."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        skip_or_fail("Redis does not answer on 127.0.0.1:6379")
    redis = aioredis.from_url(REDIS_URL)
    await redis.flushdb()
    yield REDIS_URL
    await redis.flushdb()
    await redis.aclose()


@pytest.fixture
def postgres_url() -> str:
    """The PostgreSQL test database, for tests that only make sense there."""
    if not postgres_answers():
        skip_or_fail("PostgreSQL does not answer on 127.0.0.1:5432")
    return POSTGRES_URL
