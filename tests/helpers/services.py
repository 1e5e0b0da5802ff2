"""The services the tests use, PostgreSQL and Redis, and what to do when one is absent."""

from __future__ import annotations

import os
import socket

import asyncpg
import pytest
from sqlalchemy import make_url, text

from quart_app.data.base import Base
from quart_app.data.database import build_engine

IN_CI = os.environ.get("CI") == "true"
# Under pytest-xdist each worker (gw0, gw1, ...) has a PostgreSQL database and a Redis
# database of its own, so workers never see each other's rows or keys.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_WORKER_NUMBER = int(_WORKER.removeprefix("gw")) if _WORKER else 0

_BASE_POSTGRES_URL = make_url(
    os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
)
POSTGRES_URL = _BASE_POSTGRES_URL.set(
    database=f"{_BASE_POSTGRES_URL.database}_{_WORKER}" if _WORKER else _BASE_POSTGRES_URL.database
).render_as_string(hide_password=False)

_BASE_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
_redis_server, _, _redis_database = _BASE_REDIS_URL.rpartition("/")
# Counting down from the given database: 15, 14, ... for gw0, gw1, ...
REDIS_URL = f"{_redis_server}/{int(_redis_database) - _WORKER_NUMBER}"


def postgres_answers() -> bool:
    """True when PostgreSQL accepts connections on 127.0.0.1:5432."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def skip_or_fail(reason: str, *, required: bool = IN_CI) -> None:
    """Skip for want of a service, except where it is *required* (CI=true): then fail."""
    if required:
        pytest.fail(f"{reason} (required here: this must run)")
    pytest.skip(reason)


async def reset_schema(url: str, *, create: bool = True) -> None:
    """Drop every table at *url*, then (unless *create* is false) create them again."""
    engine = build_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            if create:
                await connection.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()


async def create_worker_database() -> None:
    """Create this xdist worker's PostgreSQL database, if it does not exist yet."""
    if not _WORKER or not postgres_answers():
        return
    url = make_url(POSTGRES_URL)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database="postgres"
    )
    try:
        exists = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", url.database
        )
        if not exists:
            await connection.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        await connection.close()
