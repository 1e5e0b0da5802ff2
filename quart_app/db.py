"""Database access: the drivers on pools of their own, statements in SQLAlchemy Core.

The models (``models.py``) and Alembic stay the one source of truth for the schema;
the statements the app runs are SQLAlchemy Core expressions over those models,
compiled once per dialect and run by the driver itself (asyncpg, aiosqlite), on
connections pooled here. Measured against an ``AsyncSession`` and against SQLAlchemy
Core on an ``AsyncConnection``, the driver is 3 to 10 times cheaper per request
(docs/benchmarks.md).

A connection is held only for the statements that need it: ``db.fetch(...)`` takes
one, runs one statement and gives it back; ``db.transaction()`` holds one for a few
statements that must commit together. No transaction is ever open while a request
reads its body or hashes a password. Reads run in autocommit: no BEGIN, no ROLLBACK.
On SQLite a read runs on the event loop's own thread, without a hand-off to an
aiosqlite thread, unless it would wait or run long (``_SQLitePool.fetch``).

Every wait is bounded (``DATABASE_CONNECT_TIMEOUT``, ``DATABASE_STATEMENT_TIMEOUT``,
``DATABASE_POOL_TIMEOUT``); a database that cannot be reached or stops answering
raises ``DatabaseUnavailable``, which the API answers with 503 and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import asyncpg
from quart import Quart, current_app
from sqlalchemy import Boolean, DateTime, MetaData, event
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.dialects.sqlite import aiosqlite as aiosqlite_dialect
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.selectable import CompoundSelect, ExecutableReturnsRows, Select
from sqlalchemy.types import TypeDecorator

_EXTENSION_KEY = "quart_app.database"
# DATABASE_ECHO logs every statement the app runs here, with its arguments.
_statements_log = logging.getLogger("quart_app.sql")
# Ids are 32-bit integer columns on every backend; larger values cannot name a row.
MAX_ID = 2**31 - 1
# How SQLAlchemy stores a datetime in SQLite: fixed width, so text order is time order.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"

Row = dict[str, Any]


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


# --- errors -------------------------------------------------------------------------


class DatabaseUnavailable(Exception):
    """The database could not be reached, or did not answer in time."""


class ConstraintViolation(Exception):
    """A statement broke a unique or foreign-key constraint."""


# --- statements ---------------------------------------------------------------------

_DIALECTS: dict[str, Dialect] = {
    "postgresql": asyncpg_dialect.dialect(),  # type: ignore[no-untyped-call]
    "sqlite": aiosqlite_dialect.dialect(),
}


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Parameter names in placeholder order (SQLite repeats a name used twice).
    names: tuple[str, ...]
    # SQLite only: result columns whose stored form is not their Python type.
    converters: tuple[tuple[str, Callable[[Any], Any]], ...]
    # Values written into the statement itself, such as ``values(is_active=True)``.
    fixed: dict[str, Any]


_UTC_DATETIME = UTCDateTime()


# Converters run for every value of every row read, hence one plain call each.
def _from_sqlite_datetime(value: str | None) -> datetime | None:
    # Stored as naive UTC (see UTCDateTime).
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _from_sqlite_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _sqlite_converter(column: Any) -> Callable[[Any], Any] | None:
    if isinstance(column.type, UTCDateTime | DateTime):
        return _from_sqlite_datetime
    if isinstance(column.type, Boolean):
        return bool if getattr(column, "nullable", True) is False else _from_sqlite_bool
    return None


class Query:
    """A SQLAlchemy Core statement, compiled once per dialect into the driver's SQL.

    Parameters are ``bindparam`` names, passed to ``fetch``/``execute`` as keywords.
    """

    def __init__(self, statement: ExecutableReturnsRows) -> None:
        self.statement = statement
        self.reads_only = isinstance(statement, Select | CompoundSelect)
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: str) -> _Compiled:
        """The statement as *dialect*'s SQL text and parameter order."""
        found = self._compiled.get(dialect)
        if found is None:
            compiled = self.statement.compile(dialect=_DIALECTS[dialect])
            converters: list[tuple[str, Callable[[Any], Any]]] = []
            if dialect == "sqlite":
                for column in self.statement.exported_columns:
                    convert = _sqlite_converter(column)
                    if convert is not None:
                        converters.append((str(column.key), convert))
            fixed = {name: value for name, value in compiled.params.items() if value is not None}
            found = _Compiled(
                str(compiled), tuple(compiled.positiontup or ()), tuple(converters), fixed
            )
            self._compiled[dialect] = found
        return found


# --- connections --------------------------------------------------------------------


def _arguments(
    compiled: _Compiled,
    params: Mapping[str, Any],
    echo: bool,
    to_driver: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """*params* in the statement's placeholder order, through *to_driver* if given."""
    if compiled.fixed:
        params = {**compiled.fixed, **params}
    arguments = [params[name] for name in compiled.names]
    if to_driver is not None:
        arguments = [to_driver(value) for value in arguments]
    if echo:
        _statements_log.info("%s\n%r", compiled.sql, arguments)
    return arguments


class Connection(ABC):
    """One pooled connection, for the duration of a statement or a transaction."""

    dialect: str

    def __init__(self, raw: Any, echo: bool) -> None:
        self.raw = raw
        self.echo = echo

    def _arguments(self, compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
        return _arguments(compiled, params, self.echo)

    @abstractmethod
    async def fetch(self, query: Query, **params: Any) -> list[Row]:
        """Every row *query* returns, as dicts keyed by column name."""

    async def fetchrow(self, query: Query, **params: Any) -> Row | None:
        """The first row *query* returns, or ``None``."""
        rows = await self.fetch(query, **params)
        return rows[0] if rows else None

    @abstractmethod
    async def execute(self, query: Query, **params: Any) -> int:
        """Run *query*; return how many rows it changed."""


class _PostgresConnection(Connection):
    dialect = "postgresql"

    async def fetch(self, query: Query, **params: Any) -> list[Row]:
        compiled = query.compiled(self.dialect)
        records = await self.raw.fetch(compiled.sql, *self._arguments(compiled, params))
        return [dict(record) for record in records]

    async def execute(self, query: Query, **params: Any) -> int:
        compiled = query.compiled(self.dialect)
        status = await self.raw.execute(compiled.sql, *self._arguments(compiled, params))
        # "UPDATE 3", "DELETE 0", "INSERT 0 1": the count is the last word.
        return int(status.rsplit(" ", 1)[-1])


def _to_sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        naive_utc = _UTC_DATETIME.process_bind_param(value, _DIALECTS["sqlite"])
        assert naive_utc is not None
        return naive_utc.strftime(_SQLITE_DATETIME)
    return value


def _converted(compiled: _Compiled, rows: Iterable[sqlite3.Row]) -> list[Row]:
    result = [dict(row) for row in rows]
    for name, convert in compiled.converters:
        for row in result:
            row[name] = convert(row[name])
    return result


class _SQLiteConnection(Connection):
    dialect = "sqlite"
    raw: aiosqlite.Connection

    def _arguments(self, compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
        return _arguments(compiled, params, self.echo, _to_sqlite)

    async def fetch(self, query: Query, **params: Any) -> list[Row]:
        compiled = query.compiled(self.dialect)
        # execute_fetchall: statement and rows in one hand-off to the connection's thread.
        rows = await self.raw.execute_fetchall(compiled.sql, self._arguments(compiled, params))
        return _converted(compiled, rows)

    async def execute(self, query: Query, **params: Any) -> int:
        compiled = query.compiled(self.dialect)
        async with self.raw.execute(compiled.sql, self._arguments(compiled, params)) as cursor:
            return cursor.rowcount


# --- pools --------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    """Bounds, in seconds, on each kind of wait for the database."""

    connect: float
    statement: float
    pool: float


class _Pool(ABC):
    """A backend's connections, given first come, first served, within the timeouts.

    A queue of connections alone (asyncpg's pool, ``asyncio.Queue``) lets a request that
    asks just as a connection comes back take it ahead of the requests already waiting,
    which then go to the back of the line: under load some wait past the pool timeout
    and get 503 while newcomers are served. So a place in the pool is taken first, from
    a semaphore that hands each freed place to the longest waiter (``tests/test_db.py``),
    and only then a connection, which is always idle or may be opened by then.
    """

    connection_class: type[Connection]
    # The driver's errors that mean the database is out of reach, and its constraint error.
    unavailable: tuple[type[BaseException], ...]
    violation: type[BaseException]

    def __init__(self, url: str, size: int, timeouts: Timeouts, echo: bool = False) -> None:
        self.url = url
        self.size = size
        self.timeouts = timeouts
        self.echo = echo
        self._places = asyncio.Semaphore(size)
        self._idle: deque[Any] = deque()
        self._opened: set[Any] = set()

    @abstractmethod
    async def _open(self) -> Any:
        """A new connection of the driver's."""

    def _reusable(self, connection: Any, *, clean: bool) -> bool:
        """Whether *connection* may serve again; *clean* is false after a failure."""
        return True

    def _discard(self, connection: Any) -> None:
        self._opened.discard(connection)

    @asynccontextmanager
    async def _connected(self) -> AsyncIterator[Any]:
        """The driver's own connection, taken from the pool and given back after."""
        # With a place in the pool, an idle connection is there or may be opened.
        connection = self._idle.popleft() if self._idle else None
        if connection is None or not self._reusable(connection, clean=True):
            if connection is not None:
                self._discard(connection)
            try:
                connection = await self._open()
            except self.unavailable as error:
                raise DatabaseUnavailable(str(error) or type(error).__name__) from error
            self._opened.add(connection)
        clean = False
        try:
            yield connection
            clean = True
        except self.unavailable as error:
            raise DatabaseUnavailable(str(error) or type(error).__name__) from error
        except self.violation as error:
            clean = True
            raise ConstraintViolation(str(error)) from error
        except Exception:
            # The caller's own error (its transaction block has rolled back): the
            # connection itself is fine.
            clean = True
            raise
        finally:
            # Anything else (a cancellation mid-statement) may leave it in an unknown state.
            if self._reusable(connection, clean=clean):
                self._idle.append(connection)
            else:
                self._discard(connection)

    @asynccontextmanager
    async def _acquired(self) -> AsyncIterator[Any]:
        """A place in the pool, in turn, then the driver's connection."""
        if self._places.locked():
            try:
                async with asyncio.timeout(self.timeouts.pool):
                    await self._places.acquire()
            except TimeoutError as error:
                raise DatabaseUnavailable("no database connection was free") from error
        else:
            await self._places.acquire()  # a free place: no wait
        try:
            async with self._connected() as raw:
                yield raw
        finally:
            self._places.release()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection in autocommit mode."""
        async with self._acquired() as raw:
            yield self.connection_class(raw, self.echo)

    async def fetch(self, query: Query, **params: Any) -> list[Row]:
        """Every row of one statement, on a connection taken for it alone."""
        async with self.connection() as connection:
            return await connection.fetch(query, **params)

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A connection inside a transaction that commits on success, else rolls back."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection."""


_POSTGRES_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; ConnectionError is one
    TimeoutError,
    asyncpg.exceptions.InterfaceError,  # the connection closed under us
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.QueryCanceledError,  # the server's statement_timeout
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


class _PostgresPool(_Pool):
    """asyncpg connections, opened on demand, behind ``_Pool``'s places.

    Not asyncpg's own pool: with a place already taken there is nothing left for it to
    arbitrate, and it costs every release a shielded task and a reset.
    """

    connection_class = _PostgresConnection
    unavailable = _POSTGRES_UNAVAILABLE
    violation = asyncpg.exceptions.IntegrityConstraintViolationError

    def __init__(self, url: str, size: int, timeouts: Timeouts, echo: bool = False) -> None:
        super().__init__(url, size, timeouts, echo)
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)

    async def _open(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self._dsn,
            timeout=self.timeouts.connect,
            command_timeout=self.timeouts.statement,
            server_settings={
                # The server gives up too, so a cancelled statement frees its locks.
                "statement_timeout": str(int(self.timeouts.statement * 1000)),
                "idle_in_transaction_session_timeout": str(int(self.timeouts.statement * 2000)),
            },
        )

    def _reusable(self, connection: asyncpg.Connection, *, clean: bool) -> bool:
        # After a failure it may still be waiting for an answer (a timeout) or be
        # mid-statement (a cancellation): of no more use.
        return clean and not connection.is_closed() and not connection.is_in_transaction()

    def _discard(self, connection: asyncpg.Connection) -> None:
        super()._discard(connection)
        connection.terminate()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._acquired() as raw, raw.transaction():
            yield _PostgresConnection(raw, self.echo)

    async def close(self) -> None:
        opened, self._opened = self._opened, set()
        self._idle.clear()
        for connection in opened:
            try:
                await asyncio.wait_for(connection.close(), self.timeouts.statement)
            except _POSTGRES_UNAVAILABLE:
                connection.terminate()


# A read on the loop's thread holds up every other request of the worker meanwhile.
READ_HERE_SECONDS = 0.02


class _SQLitePool(_Pool):
    """A few aiosqlite connections (each one a thread), opened on demand."""

    connection_class = _SQLiteConnection
    unavailable = (sqlite3.OperationalError, TimeoutError)
    violation = sqlite3.IntegrityError

    def __init__(self, url: str, size: int, timeouts: Timeouts, echo: bool = False) -> None:
        database = make_url(url).database
        self.path = database if database else ":memory:"
        # An in-memory database lives in one connection; more would see other databases.
        super().__init__(url, 1 if self.path == ":memory:" else size, timeouts, echo)
        self._reader: sqlite3.Connection | None = None
        self._read_deadline = 0.0

    async def _open(self) -> aiosqlite.Connection:
        connection = aiosqlite.connect(
            self.path, isolation_level=None, timeout=self.timeouts.statement
        )
        try:
            await connection
        except BaseException:
            # A failed connect leaves aiosqlite's worker thread stopping on its own; if
            # the loop closed first, the thread would raise "Event loop is closed".
            # aiosqlite has no join() yet (omnilib/aiosqlite#387), hence the private name.
            await asyncio.shield(asyncio.to_thread(connection._thread.join))
            raise
        try:
            connection.row_factory = sqlite3.Row
            # WAL lets readers proceed during a write; busy_timeout makes a writer wait
            # for the lock (within the statement timeout) instead of failing at once.
            await connection.executescript(
                "PRAGMA journal_mode=WAL;"
                f"PRAGMA busy_timeout={int(self.timeouts.statement * 1000)};"
                "PRAGMA foreign_keys=ON;"
                "PRAGMA synchronous=NORMAL;"
            )
        except BaseException:
            await asyncio.shield(connection.close())
            raise
        return connection

    async def fetch(self, query: Query, **params: Any) -> list[Row]:
        """A read runs at once on the loop's own thread when it can; else on a pooled one.

        Handing a statement to an aiosqlite thread and back costs more than a small
        indexed read itself (about 7 context switches and 0.4 M instructions). A read
        in WAL mode takes no lock a writer holds, so it does not wait: it runs here, on
        a read-only connection, unless it would have to wait (busy) or runs longer than
        ``READ_HERE_SECONDS``; then it is interrupted and runs on a pooled connection,
        within the usual timeouts, as writes and transactions always do.
        """
        if query.reads_only and self.path != ":memory:":
            with suppress(sqlite3.OperationalError):
                return self._read_here(query, params)
        return await super().fetch(query, **params)

    def _read_here(self, query: Query, params: Mapping[str, Any]) -> list[Row]:
        reader = self._reader if self._reader is not None else self._open_reader()
        compiled = query.compiled("sqlite")
        arguments = _arguments(compiled, params, self.echo, _to_sqlite)
        self._read_deadline = time.perf_counter() + READ_HERE_SECONDS
        return _converted(compiled, reader.execute(compiled.sql, arguments).fetchall())

    def _open_reader(self) -> sqlite3.Connection:
        reader = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        try:
            reader.row_factory = sqlite3.Row
            reader.executescript("PRAGMA journal_mode=WAL; PRAGMA query_only=ON;")
            # Called every 1,000 SQLite VM steps: a nonzero answer interrupts the read.
            reader.set_progress_handler(self._read_overdue, 1000)
        except BaseException:
            reader.close()
            raise
        self._reader = reader
        return reader

    def _read_overdue(self) -> bool:
        return time.perf_counter() > self._read_deadline

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._acquired() as raw:
            # IMMEDIATE takes the write lock now: transactions that read, then write,
            # run one after another, so a check they make still holds when they write.
            await raw.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteConnection(raw, self.echo)
            except BaseException:
                await raw.rollback()
                raise
            await raw.commit()

    async def close(self) -> None:
        opened, self._opened = self._opened, set()
        self._idle.clear()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()
        for connection in opened:
            await connection.close()


# --- the extension ------------------------------------------------------------------


@dataclass(frozen=True)
class _DatabaseState:
    pool: _Pool
    url: str


def dialect_of(url: str) -> str:
    """``"postgresql"`` or ``"sqlite"``, from a SQLAlchemy URL."""
    backend = make_url(url).get_backend_name()
    if backend not in _DIALECTS:
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
        pool_class = _PostgresPool if dialect == "postgresql" else _SQLitePool
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
        """A pooled connection in autocommit mode, for a few statements."""
        return self._state().pool.connection()

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection in a transaction: commit on success, else roll back."""
        return self._state().pool.transaction()

    async def fetch(self, query: Query, **params: Any) -> list[Row]:
        """Every row of one statement (run on its own, autocommit)."""
        return await self._state().pool.fetch(query, **params)

    async def fetchrow(self, query: Query, **params: Any) -> Row | None:
        """The first row of one statement, or ``None``."""
        rows = await self._state().pool.fetch(query, **params)
        return rows[0] if rows else None

    async def fetch_page(self, page: Query, count: Query, **params: Any) -> tuple[list[Row], int]:
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

    async def execute(self, query: Query, **params: Any) -> int:
        """Run one statement on its own (autocommit); return the rows it changed."""
        async with self.connection() as connection:
            return await connection.execute(query, **params)

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
