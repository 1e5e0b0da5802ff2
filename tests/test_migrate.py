"""Alembic migrations: any database, empty, older or pre-Alembic, reaches the current schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from quart import Quart
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from quart_app.db import Base, build_engine
from quart_app.migrate import current_revision, upgrade_database
from tests.conftest import make_app, reset_schema


@pytest.fixture
def empty_app(database_url: str) -> Quart:
    asyncio.run(reset_schema(database_url, create=False))
    return make_app(database_url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A SQLAlchemy engine on the test database, to look at what the migrations made."""
    engine = build_engine(database_url)
    yield engine
    await engine.dispose()


def differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def things_indexes(connection: Connection) -> set[str]:
    return {index["name"] for index in inspect(connection).get_indexes("things") if index["name"]}


async def test_an_empty_database_migrates_to_exactly_the_models(
    empty_app: Quart, engine: AsyncEngine
) -> None:
    async with empty_app.app_context():
        assert await current_revision() is None
        await upgrade_database()
        assert await current_revision() == "0002"
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []


async def test_upgrading_from_the_first_revision_keeps_the_data(
    empty_app: Quart, engine: AsyncEngine
) -> None:
    async with empty_app.app_context():
        await upgrade_database("0001")
        async with engine.begin() as connection:
            assert "ix_things_owner_id" in await connection.run_sync(things_indexes)
            await connection.execute(
                text(
                    "INSERT INTO users (id, username, username_key, password_hash, user_type,"
                    " is_active, created_at, updated_at) VALUES (7, 'Old', 'old', 'x', 'user',"
                    " true, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO things (owner_id, title, done, created_at, updated_at)"
                    " VALUES (7, 'kept', false, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
        await upgrade_database()
        assert await current_revision() == "0002"
        async with engine.connect() as connection:
            indexes = await connection.run_sync(things_indexes)
            titles = (await connection.execute(text("SELECT title FROM things"))).scalars().all()
            assert await connection.run_sync(differences) == []
    assert "ix_things_owner_id_id" in indexes
    assert "ix_things_owner_id" not in indexes
    assert titles == ["kept"]


async def test_a_database_made_before_migrations_is_adopted(
    database_url: str, engine: AsyncEngine
) -> None:
    # reset_schema builds the tables with create_all, as init-db did before Alembic.
    await reset_schema(database_url)
    app = make_app(database_url)
    async with app.app_context():
        async with engine.begin() as connection:
            await connection.execute(text("DROP INDEX ix_things_owner_id_id"))
            await connection.execute(text("CREATE INDEX ix_things_owner_id ON things (owner_id)"))
        await upgrade_database()
        assert await current_revision() == "0002"
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []


async def test_upgrading_twice_changes_nothing(empty_app: Quart) -> None:
    async with empty_app.app_context():
        await upgrade_database()
        await upgrade_database()
        assert await current_revision() == "0002"
