"""The services the tests use, PostgreSQL and Redis, and what to do when one is absent."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

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
    """Drop every table at *url*, then (unless *create* is false) create them again.

    The schema is built once per process and backend. After that, an empty schema is a
    copy of a SQLite template file, or a TRUNCATE of the PostgreSQL tables while the
    schema is still the one built (a test that migrated or altered it gets a rebuild).
    """
    if create and await _emptied_in_place(url):
        return
    engine = build_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            if create:
                await connection.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()
    if create and url.startswith("postgresql"):
        _built_schemas[url] = await _postgres_schema(url)


# A PostgreSQL database's schema as reset_schema built it, to tell when a test changed it.
_built_schemas: dict[str, str] = {}
_SQLITE_TEMPLATE = Path(tempfile.gettempdir()) / f"quart_app-schema-{os.getpid()}.sqlite3"

_SCHEMA_OF = """
    SELECT string_agg(part, ',' ORDER BY part) FROM (
        SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable
            || ':' || coalesce(column_default, '') AS part
        FROM information_schema.columns WHERE table_schema = 'public'
        UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
        UNION ALL SELECT conname || ':' || pg_get_constraintdef(oid) FROM pg_constraint
            WHERE connamespace = 'public'::regnamespace
    ) AS schema
"""


async def _postgres_connection(url: str, database: str | None = None) -> asyncpg.Connection:
    """asyncpg on the server of *url*: its database, or *database*."""
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=database or parsed.database,
    )


async def _postgres_schema(url: str) -> str:
    connection = await _postgres_connection(url)
    try:
        return str(await connection.fetchval(_SCHEMA_OF))
    finally:
        await connection.close()


def _is_new_file(path: Path) -> bool:
    return bool(path.name) and not path.exists()


def _fold_write_ahead_log(path: Path) -> None:
    # One file to copy: the write-ahead log folded into it.
    with closing(sqlite3.connect(path)) as database:
        database.execute("PRAGMA journal_mode=DELETE")


async def _emptied_in_place(url: str) -> bool:
    """Empty the schema at *url* without rebuilding it, when it is the one built."""
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        if not _is_new_file(path):
            return False
        if _is_new_file(_SQLITE_TEMPLATE):
            atexit.register(_SQLITE_TEMPLATE.unlink, missing_ok=True)
            engine = build_engine(f"sqlite+aiosqlite:///{_SQLITE_TEMPLATE}")
            try:
                async with engine.begin() as connection:
                    await connection.run_sync(Base.metadata.create_all)
            finally:
                await engine.dispose()
            _fold_write_ahead_log(_SQLITE_TEMPLATE)
        shutil.copyfile(_SQLITE_TEMPLATE, path)
        return True
    built = _built_schemas.get(url)
    if built is None:
        return False
    connection = await _postgres_connection(url)
    try:
        if await connection.fetchval(_SCHEMA_OF) != built:
            return False
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        return True
    finally:
        await connection.close()


async def create_worker_database() -> None:
    """Create this xdist worker's PostgreSQL database, if it does not exist yet."""
    if not _WORKER or not postgres_answers():
        return
    name = make_url(POSTGRES_URL).database
    connection = await _postgres_connection(POSTGRES_URL, database="postgres")
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
