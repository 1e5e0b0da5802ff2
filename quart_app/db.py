"""SQLAlchemy 2 async engine, one session per request, and the declarative base."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from quart import Quart, current_app, g
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

_EXTENSION_KEY = "quart_app.database"
# Ids are 32-bit integer columns on every backend; larger values cannot name a row.
MAX_ID = 2**31 - 1


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no timezone type and returns naive values; PostgreSQL returns aware ones.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    # Named constraints, identical on every backend, so migrations can refer to them.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


ModelT = TypeVar("ModelT", bound=Base)


@dataclass
class _DatabaseState:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # One place per pooled connection, handed out first come, first served.
    gate: asyncio.Semaphore


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; busy_timeout makes concurrent writers wait
    # instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def build_engine(url: str, *, echo: bool = False, **pool: int) -> AsyncEngine:
    """Create an async engine for *url*; *pool* sizes its connection pool."""
    if url.startswith("sqlite"):
        # An in-memory database lives in one connection, which is not a sized pool.
        engine = create_async_engine(url, echo=echo, **({} if ":memory:" in url else pool))
        event.listen(engine.sync_engine, "connect", _enable_sqlite_pragmas)
        return engine
    # pre_ping: a connection the server dropped (restart, failover) is replaced, not used.
    return create_async_engine(url, echo=echo, pool_pre_ping=True, **pool)


class Database:
    """Binds an engine to each app; hands out one ``AsyncSession`` per app context."""

    def init_app(self, app: Quart) -> None:
        """Create the app's engine from ``DATABASE_URL`` and register clean-up."""
        engine = build_engine(
            app.config["DATABASE_URL"],
            echo=app.config["DATABASE_ECHO"],
            pool_size=app.config["DATABASE_POOL_SIZE"],
            max_overflow=app.config["DATABASE_MAX_OVERFLOW"],
            pool_timeout=app.config["DATABASE_POOL_TIMEOUT"],
        )
        places = app.config["DATABASE_POOL_SIZE"] + app.config["DATABASE_MAX_OVERFLOW"]
        app.extensions[_EXTENSION_KEY] = _DatabaseState(
            engine=engine,
            sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
            gate=asyncio.Semaphore(places),
        )
        app.teardown_appcontext(self._close_session)
        app.after_serving(self._dispose_engine)

    @staticmethod
    def _state() -> _DatabaseState:
        state: _DatabaseState = current_app.extensions[_EXTENSION_KEY]
        return state

    @property
    def engine(self) -> AsyncEngine:
        """The current app's engine."""
        return self._state().engine

    async def admit(self) -> None:
        """Wait, first come first served, for one of this worker's pooled connections.

        SQLAlchemy's async pool lets a newcomer take a connection that was just returned
        ahead of requests already waiting, so under a flood some requests wait for
        seconds. Taking a place here first keeps the order fair. The place is held
        until the request's session closes.
        """
        if "db_admitted" not in g:
            await self._state().gate.acquire()
            g.db_admitted = True

    async def get(self, model: type[ModelT], row_id: int) -> ModelT | None:
        """The *model* row with primary key *row_id*, or ``None``.

        An id outside the column's range finds nothing instead of overflowing the driver.
        """
        if not 0 <= row_id <= MAX_ID:
            return None
        return await self.session.get(model, row_id)

    @property
    def session(self) -> AsyncSession:
        """The session of the current app context, opened on first use."""
        if "db_session" not in g:
            g.db_session = self._state().sessionmaker()
        session: AsyncSession = g.db_session
        return session

    async def _close_session(self, _exc: BaseException | None) -> None:
        session: AsyncSession | None = g.pop("db_session", None)
        try:
            if session is not None:
                await session.close()
        finally:
            if g.pop("db_admitted", False):
                self._state().gate.release()

    async def _dispose_engine(self) -> None:
        await self.engine.dispose()


db = Database()
