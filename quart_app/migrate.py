"""Bringing any database, empty or older, to the current schema with Alembic."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from .db import build_engine, db

FIRST_REVISION = "0001"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(files("quart_app") / "migrations"))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    tables = inspect(connection).get_table_names()
    if "users" in tables and "alembic_version" not in tables:
        # Made by create_all before migrations existed: that schema is revision 0001.
        command.stamp(alembic_config(connection), FIRST_REVISION)
    command.upgrade(alembic_config(connection), revision)


async def upgrade_database(revision: str = "head") -> None:
    """Migrate the current app's database to *revision* (default: the newest)."""
    engine = build_engine(db.url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_upgrade, revision)
            await connection.commit()
    finally:
        await engine.dispose()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision() -> str | None:
    """The revision the current app's database is at, or ``None`` when unmigrated."""
    engine = build_engine(db.url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current)
    finally:
        await engine.dispose()
