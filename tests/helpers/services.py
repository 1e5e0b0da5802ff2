"""The services the tests use, PostgreSQL and Redis, and what to do when one is absent."""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import text

from quart_app.data.base import Base
from quart_app.data.database import build_engine

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI") == "true"


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
