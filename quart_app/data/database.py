"""The Quart extension ``db``: a pool per app, from ``DATABASE_URL`` and ``DATABASE_*``.

The models (``models.py``) and Alembic stay the one source of truth for the schema;
the statements the app runs are SQLAlchemy Core expressions over those models
(``statements.py``), run by the driver itself (asyncpg, aiosqlite) on connections
pooled here (``pool.py``). Measured against an ``AsyncSession`` and against SQLAlchemy
Core on an ``AsyncConnection``, the driver is 3 to 10 times cheaper per request
(docs/benchmarks.md).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from quart import Quart, current_app
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from quart_app.data.pool import Connection, Pool, Timeouts
from quart_app.data.postgres import PostgresPool
from quart_app.data.sqlite import SQLitePool
from quart_app.data.statements import DIALECTS, Query, R, Row

_EXTENSION_KEY = "quart_app.database"


@dataclass(frozen=True)
class _DatabaseState:
    pool: Pool
    url: str


def dialect_of(url: str) -> str:
    """``"postgresql"`` or ``"sqlite"``, from a SQLAlchemy URL."""
    backend = make_url(url).get_backend_name()
    if backend not in DIALECTS:
        raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
    return backend


class Database:
    """Binds a connection pool to each app, from ``DATABASE_URL`` and ``DATABASE_*``."""

    def init_app(self, app: Quart) -> None:
        """Create the app's pool (opened on first use) and close it when serving stops."""
        url = app.config["DATABASE_URL"]
        dialect = dialect_of(url)
        timeouts = Timeouts(
            connect=float(app.config["DATABASE_CONNECT_TIMEOUT"]),
            statement=float(app.config["DATABASE_STATEMENT_TIMEOUT"]),
            pool=float(app.config["DATABASE_POOL_TIMEOUT"]),
        )
        size = int(app.config["DATABASE_POOL_SIZE"])
        pool_class = PostgresPool if dialect == "postgresql" else SQLitePool
        pool = pool_class(url, size, timeouts, bool(app.config["DATABASE_ECHO"]))
        app.extensions[_EXTENSION_KEY] = _DatabaseState(pool=pool, url=url)
        app.after_serving(self.close)

    @staticmethod
    def _state() -> _DatabaseState:
        state: _DatabaseState = current_app.extensions[_EXTENSION_KEY]
        return state

    @property
    def url(self) -> str:
        """The current app's database URL."""
        return self._state().url

    def connection(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection in autocommit mode, for a few statements (inside a
        transaction, the transaction's own)."""
        return self._state().pool.connection()

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection in a transaction: commit on success, else roll back."""
        return self._state().pool.transaction()

    @property
    def pool(self) -> Pool:
        """The current app's pool (tests look at its places)."""
        return self._state().pool

    async def fetch(self, query: Query[R], **params: Any) -> list[R]:
        """Every row of one statement: on its own (autocommit), or in the transaction
        the caller is inside."""
        return await self._state().pool.fetch(query, **params)

    async def fetchrow(self, query: Query[R], **params: Any) -> R | None:
        """The first row of one statement, or ``None``."""
        rows = await self._state().pool.fetch(query, **params)
        return rows[0] if rows else None

    async def fetch_page(
        self, page: Query[Row], count: Query[Row], **params: Any
    ) -> tuple[list[Row], int]:
        """A page of rows and the total they are taken from.

        *page* carries the total in each row's ``total`` column (a window count), so one
        round trip is enough; past the last page no row carries it, and *count* (whose
        one row has ``total``) is asked instead. Each query takes the *params* it names.
        """
        rows = await self.fetch(page, **params)
        if rows:
            return rows, int(rows[0]["total"])
        row = await self.fetchrow(count, **params)
        return [], int(row["total"]) if row else 0

    async def execute(self, query: Query[Any], **params: Any) -> int:
        """Run one statement (autocommit, or in the caller's transaction); return the
        rows it changed."""
        return await self._state().pool.execute(query, **params)

    async def close(self) -> None:
        """Close the current app's connections (after serving, or at the end of a command)."""
        await self._state().pool.close()


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def build_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """A SQLAlchemy engine for *url*, for migrations and tests (the app uses the pool)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=echo)


db = Database()
