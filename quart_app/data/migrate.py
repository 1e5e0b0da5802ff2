"""Bringing any database, empty or older, to the current schema with Alembic."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from quart_app.data.database import build_engine, db

FIRST_REVISION = "0001"


class ForeignKeysBroken(Exception):
    """A migration left rows whose foreign keys name no row; nothing was committed."""


def _prepare_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3 opens a transaction only before INSERT, UPDATE or DELETE, so DDL would
    # commit statement by statement; with BEGIN emitted by _begin, a migration commits
    # or rolls back as a whole.
    dbapi_connection.isolation_level = None
    # SQLite's procedure for schema changes: rebuilding a table (create, copy, drop,
    # rename) with foreign keys on would cascade the drop to every child row. The
    # pragma cannot change inside a transaction, hence here, before any.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


def _begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock now (waiting up to busy_timeout), so a writer that
    # commits between our first read and first write cannot fail the migration midway.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def migration_engine(url: str) -> AsyncEngine:
    """An engine to migrate *url* with.

    On SQLite, each transaction is a real one (DDL included) and foreign keys are not
    enforced while it runs; ``check_foreign_keys`` checks them before the commit.
    """
    engine = build_engine(url)
    if engine.dialect.name == "sqlite":
        # Runs after build_engine's own connect hook, so foreign keys end up off.
        event.listen(engine.sync_engine, "connect", _prepare_sqlite_connection)
        event.listen(engine.sync_engine, "begin", _begin)
    return engine


def check_foreign_keys(connection: Connection) -> None:
    """Raise ``ForeignKeysBroken`` if any row's foreign key names no row (SQLite)."""
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL enforces them during the migration itself
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise ForeignKeysBroken(f"rows whose foreign keys name no row: {broken}")


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(files("quart_app.data") / "migrations"))
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
    engine = migration_engine(db.url)
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
