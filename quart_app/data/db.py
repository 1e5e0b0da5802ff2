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
import inspect
import logging
import math
import sqlite3
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

import aiosqlite
import asyncpg
from quart import Quart, current_app
from sqlalchemy import Boolean, Column, DateTime, MetaData, event
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.dialects.sqlite import aiosqlite as aiosqlite_dialect
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import CompoundSelect, ExecutableReturnsRows, Select
from sqlalchemy.types import TypeDecorator

from quart_app.upstream.aiosqlite import join_worker_thread

_EXTENSION_KEY = "quart_app.database"
# DATABASE_ECHO logs every statement the app runs here, with its arguments.
_statements_log = logging.getLogger("quart_app.sql")
logger = logging.getLogger(__name__)
# Ids are 32-bit integer columns on every backend; larger values cannot name a row.
MAX_ID = 2**31 - 1
# How SQLAlchemy stores a datetime in SQLite: fixed width, so text order is time order.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


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
    """The database could not be reached, or did not answer in time: a passing outage."""


class ConstraintViolation(Exception):
    """A statement broke a unique or foreign-key constraint."""


# --- rows ---------------------------------------------------------------------------


class Row(dict[str, Any]):
    """A result row: its columns by name, as ``row.title`` or ``row["title"]``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


R = TypeVar("R")
T = TypeVar("T")


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
    # The model's Python-side ``default``/``onupdate`` of columns the statement writes
    # without naming a value: used when the caller passes none.
    defaults: tuple[tuple[str, Callable[[], Any]], ...]


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


def _python_default(column: Column[Any], default: Any) -> Callable[[], Any]:
    """What the model's ``default=``/``onupdate=`` of *column* gives, as a plain call.

    Raises ``ValueError`` for the defaults only SQLAlchemy's execution context can run.
    """
    if default.is_scalar:
        value = default.arg
        return lambda: value
    if default.is_callable:
        # SQLAlchemy wraps a callable that takes no argument into one taking its
        # execution context; inspect.signature sees through the wrapper. A builtin
        # (dict, list) has no signature to read: SQLAlchemy wraps those too.
        try:
            parameters = inspect.signature(default.arg).parameters.values()
        except (TypeError, ValueError):
            parameters = inspect.Signature().parameters.values()
        if any(
            parameter.default is parameter.empty
            and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
            for parameter in parameters
        ):
            raise ValueError(
                f"column {column.key!r}: a default that reads SQLAlchemy's execution context "
                "cannot run here; pass the value, or use a default taking no argument"
            )
        produce = default.arg
        return lambda: produce(None)
    raise ValueError(
        f"column {column.key!r}: a SQL-expression default run ahead of the statement is not "
        "supported here; use server_default=, or pass the value"
    )


class Query(Generic[R]):
    """A SQLAlchemy Core statement, compiled once per dialect into the driver's SQL.

    Parameters are ``bindparam`` names, passed to ``fetch``/``execute`` as keywords.
    Columns an INSERT or UPDATE writes without a value named in the statement take the
    model's Python-side ``default``/``onupdate`` unless the caller passes them, as
    SQLAlchemy does. Rows come back as ``Row`` (``row.title``), or built by *into*
    (a dataclass, say) from the columns as keywords.
    """

    @overload
    def __init__(self: Query[Row], statement: ExecutableReturnsRows | UpdateBase) -> None: ...

    @overload
    def __init__(
        self, statement: ExecutableReturnsRows | UpdateBase, *, into: Callable[..., R]
    ) -> None: ...

    def __init__(
        self,
        statement: ExecutableReturnsRows | UpdateBase,
        *,
        into: Callable[..., R] | None = None,
    ) -> None:
        self.statement = statement
        self.reads_only = isinstance(statement, Select | CompoundSelect)
        self.into = into
        self._compiled: dict[str, _Compiled] = {}
        # Refused here, when the model is imported, rather than at request time.
        self.compiled("sqlite")

    def compiled(self, dialect: str) -> _Compiled:
        """The statement as *dialect*'s SQL text and parameter order."""
        found = self._compiled.get(dialect)
        if found is None:
            compiled = self.statement.compile(dialect=_DIALECTS[dialect])
            converters: list[tuple[str, Callable[[Any], Any]]] = []
            if dialect == "sqlite":
                for column in getattr(self.statement, "exported_columns", ()):
                    convert = _sqlite_converter(column)
                    if convert is not None:
                        converters.append((str(column.key), convert))
            fixed = {name: value for name, value in compiled.params.items() if value is not None}
            defaults = tuple(
                [
                    (column.key, _python_default(column, column.default))
                    for column in compiled.insert_prefetch
                ]
                + [
                    (column.key, _python_default(column, column.onupdate))
                    for column in compiled.update_prefetch
                ]
            )
            found = _Compiled(
                str(compiled),
                tuple(compiled.positiontup or ()),
                tuple(converters),
                fixed,
                defaults,
            )
            self._compiled[dialect] = found
        return found

    def rows(self, rows: list[Row]) -> list[R]:
        """*rows* as this query's row type."""
        if self.into is None:
            return rows  # type: ignore[return-value]  # R is Row then
        into = self.into
        return [into(**row) for row in rows]


class MissingParameter(TypeError):
    """A statement was run without a value its SQL needs."""


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
    if compiled.defaults:
        params = {**{name: produce() for name, produce in compiled.defaults}, **params}
    try:
        arguments = [params[name] for name in compiled.names]
    except KeyError:
        missing = sorted(set(compiled.names) - set(params))
        raise MissingParameter(f"no value for {', '.join(missing)} in: {compiled.sql}") from None
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

    @abstractmethod
    async def _rows(self, query: Query[Any], params: Mapping[str, Any]) -> list[Row]:
        """Every row *query* returns."""

    async def fetch(self, query: Query[R], **params: Any) -> list[R]:
        """Every row *query* returns."""
        return query.rows(await self._rows(query, params))

    async def fetchrow(self, query: Query[R], **params: Any) -> R | None:
        """The first row *query* returns, or ``None``."""
        rows = await self.fetch(query, **params)
        return rows[0] if rows else None

    @abstractmethod
    async def execute(self, query: Query[Any], **params: Any) -> int:
        """Run *query*; return how many rows it changed."""

    @abstractmethod
    async def _run(self, sql: str) -> None:
        """Run a statement of the driver's own (BEGIN, COMMIT, ROLLBACK)."""


class _PostgresConnection(Connection):
    dialect = "postgresql"

    async def _rows(self, query: Query[Any], params: Mapping[str, Any]) -> list[Row]:
        compiled = query.compiled(self.dialect)
        records = await self.raw.fetch(compiled.sql, *_arguments(compiled, params, self.echo))
        return [Row(record) for record in records]

    async def execute(self, query: Query[Any], **params: Any) -> int:
        compiled = query.compiled(self.dialect)
        status = await self.raw.execute(compiled.sql, *_arguments(compiled, params, self.echo))
        # "UPDATE 3", "DELETE 0", "INSERT 0 1": the count is the last word.
        return int(status.rsplit(" ", 1)[-1])

    async def _run(self, sql: str) -> None:
        await self.raw.execute(sql)


def _to_sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        naive_utc = _UTC_DATETIME.process_bind_param(value, _DIALECTS["sqlite"])
        assert naive_utc is not None
        return naive_utc.strftime(_SQLITE_DATETIME)
    return value


def _converted(compiled: _Compiled, rows: Iterable[sqlite3.Row]) -> list[Row]:
    result = [Row(row) for row in rows]
    for name, convert in compiled.converters:
        for row in result:
            row[name] = convert(row[name])
    return result


class _SQLiteLink:
    """An aiosqlite connection and the deadline of the statement it runs.

    SQLite bounds only the wait for a lock (``busy_timeout``); the progress handler,
    called every 1,000 steps of SQLite's VM on the connection's thread, interrupts
    a statement that runs past its deadline.
    """

    __slots__ = ("deadline", "driver")

    def __init__(self, driver: aiosqlite.Connection) -> None:
        self.driver = driver
        self.deadline = math.inf

    def overdue(self) -> bool:
        return time.monotonic() > self.deadline


class _SQLiteConnection(Connection):
    dialect = "sqlite"
    raw: _SQLiteLink

    def __init__(self, raw: _SQLiteLink, echo: bool, statement_timeout: float) -> None:
        super().__init__(raw, echo)
        self.statement_timeout = statement_timeout

    def _start(self) -> aiosqlite.Connection:
        self.raw.deadline = time.monotonic() + self.statement_timeout
        return self.raw.driver

    async def _rows(self, query: Query[Any], params: Mapping[str, Any]) -> list[Row]:
        compiled = query.compiled(self.dialect)
        arguments = _arguments(compiled, params, self.echo, _to_sqlite)
        # execute_fetchall: statement and rows in one hand-off to the connection's thread.
        rows = await self._start().execute_fetchall(compiled.sql, arguments)
        return _converted(compiled, rows)

    async def execute(self, query: Query[Any], **params: Any) -> int:
        compiled = query.compiled(self.dialect)
        arguments = _arguments(compiled, params, self.echo, _to_sqlite)
        async with self._start().execute(compiled.sql, arguments) as cursor:
            return cursor.rowcount

    async def _run(self, sql: str) -> None:
        await self._start().execute_fetchall(sql)


# --- pools --------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    """Bounds, in seconds, on each kind of wait for the database."""

    connect: float
    statement: float
    pool: float


# The transaction the current task is inside, and the pool it came from: the pool's
# own statements run on that connection, so they see what the transaction wrote.
_in_transaction: ContextVar[tuple[_Pool, Connection] | None] = ContextVar(
    "quart_app.db.transaction", default=None
)


class _Pool(ABC):
    """A backend's connections, given first come, first served, within the timeouts.

    A queue of connections alone (asyncpg's pool, ``asyncio.Queue``) lets a request that
    asks just as a connection comes back take it ahead of the requests already waiting,
    which then go to the back of the line: under load some wait past the pool timeout
    and get 503 while newcomers are served. So a place in the pool is taken first, from
    a semaphore that hands each freed place to the longest waiter (``tests/test_db.py``),
    and only then a connection, which is always idle or may be opened by then.

    A connection goes back to the idle queue only when its holder finished cleanly and
    it is in no transaction. After anything else (a cancellation mid-statement, a lost
    connection, a failed COMMIT) its state is unknown: it is closed, which ends any
    transaction it had and frees its locks, and its place is given back only then.
    """

    violation: type[BaseException]

    def __init__(self, url: str, size: int, timeouts: Timeouts, echo: bool = False) -> None:
        self.url = url
        self.size = size
        self.timeouts = timeouts
        self.echo = echo
        self._places = asyncio.Semaphore(size)
        self._idle: deque[Any] = deque()
        self._opened: set[Any] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.in_use = 0

    @abstractmethod
    async def _open(self) -> Any:
        """A new connection of the driver's."""

    @abstractmethod
    def _connection(self, raw: Any) -> Connection:
        """*raw* wrapped for the statements of ``Query``."""

    @abstractmethod
    def is_outage(self, error: BaseException, raw: Any | None) -> bool:
        """Whether *error* means the database is out of reach, not a fault of the code."""

    @abstractmethod
    def _reusable(self, raw: Any) -> bool:
        """Whether *raw*, given back cleanly, may serve again (in no transaction, open)."""

    @abstractmethod
    async def _close(self, raw: Any) -> None:
        """Close *raw*, whatever it was doing."""

    def _unavailable(self, error: BaseException) -> DatabaseUnavailable:
        return DatabaseUnavailable(str(error) or type(error).__name__)

    async def _take(self) -> Any:
        """A place in the pool, in turn, then a connection: idle, or opened now."""
        if self._places.locked():
            try:
                async with asyncio.timeout(self.timeouts.pool):
                    await self._places.acquire()
            except TimeoutError as error:
                raise DatabaseUnavailable("no database connection was free") from error
        else:
            await self._places.acquire()  # a free place: no wait
        self.in_use += 1
        try:
            while self._idle:
                raw = self._idle.popleft()
                if self._reusable(raw):
                    return raw
                self._opened.discard(raw)
                await self._close(raw)
            try:
                raw = await self._open()
            except Exception as error:
                if self.is_outage(error, None):
                    raise self._unavailable(error) from error
                raise
        except BaseException:
            self._give_place()
            raise
        self._opened.add(raw)
        return raw

    def _give_place(self) -> None:
        self.in_use -= 1
        self._places.release()

    def _give_back(self, raw: Any, reusable: bool) -> None:
        """*raw* back to the idle queue if it may serve again; else closed."""
        if reusable and self._reusable(raw):
            self._idle.append(raw)
            self._give_place()
        else:
            self._retire(raw)

    def _translated(self, error: Exception, raw: Any) -> Exception | None:
        """What *error* raised while *raw* was held becomes: ``DatabaseUnavailable`` for
        an outage (*raw* is then of no more use), ``ConstraintViolation``, or ``None``
        to raise it as it is (a statement's own error, or the caller's)."""
        if self.is_outage(error, raw):
            return self._unavailable(error)
        if isinstance(error, self.violation):
            return ConstraintViolation(str(error))
        return None

    def _retire(self, raw: Any) -> None:
        """Close *raw* in the background; its place is freed once it is closed."""
        self._opened.discard(raw)

        async def close() -> None:
            try:
                await self._close(raw)
            except Exception:
                logger.exception("closing a database connection failed")
            finally:
                self._give_place()

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @asynccontextmanager
    async def _acquired(self) -> AsyncIterator[Any]:
        """The driver's connection, taken in turn and given back after."""
        raw = await self._take()
        reusable = False
        try:
            yield raw
            reusable = True
        except Exception as error:
            translated = self._translated(error, raw)
            reusable = not isinstance(translated, DatabaseUnavailable)
            if translated is not None:
                raise translated from error
            raise
        finally:
            self._give_back(raw, reusable)

    def _current(self) -> Connection | None:
        current = _in_transaction.get()
        return current[1] if current is not None and current[0] is self else None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection in autocommit mode; inside a transaction, the transaction's."""
        current = self._current()
        if current is not None:
            yield current
            return
        async with self._acquired() as raw:
            yield self._connection(raw)

    async def _alone(self, statement: Callable[[Connection], Awaitable[T]]) -> T:
        """Run *statement* on a connection taken for it alone (inside a transaction, the
        transaction's own).

        ``_acquired`` written out: each request runs a few statements, and an async
        context manager costs more than the pool's own work.
        """
        current = self._current()
        if current is not None:
            return await statement(current)
        raw = await self._take()
        reusable = False
        try:
            result = await statement(self._connection(raw))
            reusable = True
            return result
        except Exception as error:
            translated = self._translated(error, raw)
            reusable = not isinstance(translated, DatabaseUnavailable)
            if translated is not None:
                raise translated from error
            raise
        finally:
            self._give_back(raw, reusable)

    async def fetch(self, query: Query[R], **params: Any) -> list[R]:
        """Every row of one statement, on a connection taken for it alone."""
        return await self._alone(lambda connection: connection.fetch(query, **params))

    async def execute(self, query: Query[Any], **params: Any) -> int:
        """Run one statement on a connection taken for it alone; the rows it changed."""
        return await self._alone(lambda connection: connection.execute(query, **params))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection inside a transaction that commits on success, else rolls back.

        Only on the caller's own error (an ``Exception``) is ROLLBACK sent; a
        cancellation leaves the connection to be closed, which rolls back too, without
        waiting for a statement still running.
        """
        if self._current() is not None:
            raise RuntimeError("already inside a transaction: use the connection it gave")
        async with self._acquired() as raw:
            connection = self._connection(raw)
            await connection._run(self._begin)
            token = _in_transaction.set((self, connection))
            try:
                yield connection
            except Exception:
                await connection._run("ROLLBACK")
                raise
            finally:
                _in_transaction.reset(token)
            await connection._run("COMMIT")

    _begin = "BEGIN"

    async def settled(self) -> None:
        """Wait until every connection being closed is closed (and its place free)."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def close(self) -> None:
        """Close every connection."""
        await self.settled()
        opened, self._opened = self._opened, set()
        self._idle.clear()
        for raw in opened:
            await self._close_idle(raw)

    async def _close_idle(self, raw: Any) -> None:
        """Close *raw*, which nothing uses any more (the pool is closing)."""
        await self._close(raw)


# The driver's errors that mean PostgreSQL is out of reach or did not answer in time:
# retried later, they may succeed. Everything else is a fault of the code (a 500).
_POSTGRES_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; ConnectionError is one
    TimeoutError,  # connect or command timeout
    asyncpg.exceptions.PostgresConnectionError,  # 08: the connection failed or is gone
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutdown, statement_timeout
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.exceptions.LockNotAvailableError,  # 55P03: lock_timeout
    asyncpg.exceptions.TransactionRollbackError,  # 40: deadlock, serialization failure
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
)


class _PostgresPool(_Pool):
    """asyncpg connections, opened on demand, behind ``_Pool``'s places.

    Not asyncpg's own pool: with a place already taken there is nothing left for it to
    arbitrate, and it costs every release a shielded task and a reset.
    """

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

    def _connection(self, raw: asyncpg.Connection) -> Connection:
        return _PostgresConnection(raw, self.echo)

    def is_outage(self, error: BaseException, raw: asyncpg.Connection | None) -> bool:
        if isinstance(error, _POSTGRES_OUTAGES):
            return True
        # "connection is closed": the server went away under us. Any other misuse of
        # the driver is the code's fault.
        return (
            isinstance(error, asyncpg.exceptions.InterfaceError)
            and raw is not None
            and raw.is_closed()
        )

    def _reusable(self, raw: asyncpg.Connection) -> bool:
        return not raw.is_closed() and not raw.is_in_transaction()

    async def _close(self, raw: asyncpg.Connection) -> None:
        # Closing the socket ends the server's session, and any transaction with it.
        raw.terminate()

    async def _close_idle(self, raw: asyncpg.Connection) -> None:
        # A clean goodbye to the server within the statement timeout; else the socket is cut.
        try:
            await asyncio.wait_for(raw.close(), self.timeouts.statement)
        except _POSTGRES_OUTAGES:
            raw.terminate()


# A read on the loop's thread holds up every other request of the worker meanwhile.
READ_HERE_SECONDS = 0.02

# SQLite's result codes (the low byte of an extended code) of a passing condition: a
# lock held too long, a statement past its deadline, a full disk, a file that cannot
# be opened or read. The rest (SQLITE_ERROR: no such table, a syntax error) are faults.
_SQLITE_OUTAGES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def sqlite_outage(error: BaseException) -> bool:
    """Whether a SQLite error means the database is busy or out of reach."""
    if isinstance(error, TimeoutError):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.Error) and code is not None and code & 0xFF in _SQLITE_OUTAGES


class _SQLitePool(_Pool):
    """A few aiosqlite connections (each one a thread), opened on demand."""

    violation = sqlite3.IntegrityError
    # IMMEDIATE takes the write lock now: transactions that read, then write, run one
    # after another, so a check they make still holds when they write.
    _begin = "BEGIN IMMEDIATE"

    def __init__(self, url: str, size: int, timeouts: Timeouts, echo: bool = False) -> None:
        database = make_url(url).database
        self.path = database if database else ":memory:"
        # An in-memory database lives in one connection; more would see other databases.
        super().__init__(url, 1 if self.path == ":memory:" else size, timeouts, echo)
        self._reader: sqlite3.Connection | None = None
        self._read_deadline = 0.0

    async def _open(self) -> _SQLiteLink:
        driver = aiosqlite.connect(self.path, isolation_level=None, timeout=self.timeouts.statement)
        try:
            await driver
        except BaseException:
            # A failed connect leaves aiosqlite's worker thread stopping on its own; if
            # the loop closed first, the thread would raise "Event loop is closed".
            # aiosqlite has no join() yet (omnilib/aiosqlite#387): see upstream/aiosqlite.py.
            await asyncio.shield(asyncio.to_thread(join_worker_thread, driver))
            raise
        link = _SQLiteLink(driver)
        try:
            driver.row_factory = sqlite3.Row
            # WAL lets readers proceed during a write; busy_timeout makes a writer wait
            # for the lock (within the statement timeout) instead of failing at once.
            await driver.executescript(
                "PRAGMA journal_mode=WAL;"
                f"PRAGMA busy_timeout={int(self.timeouts.statement * 1000)};"
                "PRAGMA foreign_keys=ON;"
                "PRAGMA synchronous=NORMAL;"
            )
            await driver.set_progress_handler(link.overdue, 1000)
        except BaseException:
            await asyncio.shield(driver.close())
            raise
        return link

    def _connection(self, raw: _SQLiteLink) -> Connection:
        return _SQLiteConnection(raw, self.echo, self.timeouts.statement)

    def is_outage(self, error: BaseException, raw: _SQLiteLink | None) -> bool:
        return sqlite_outage(error)

    def _reusable(self, raw: _SQLiteLink) -> bool:
        # Read on the loop's thread: nothing runs on the connection's own thread now.
        return not raw.driver.in_transaction

    async def _close(self, raw: _SQLiteLink) -> None:
        # A statement still running on the connection's thread is stopped; the close
        # queued behind it rolls back whatever transaction is open, freeing the lock.
        with suppress(ValueError):  # not connected (any more)
            await raw.driver.interrupt()
        await raw.driver.close()

    async def fetch(self, query: Query[R], **params: Any) -> list[R]:
        """A read runs at once on the loop's own thread when it can; else on a pooled one.

        Handing a statement to an aiosqlite thread and back costs more than a small
        indexed read itself (about 7 context switches and 0.4 M instructions). A read
        in WAL mode takes no lock a writer holds, so it does not wait: it runs here, on
        a read-only connection, unless it would have to wait (busy) or runs longer than
        ``READ_HERE_SECONDS``; then it is interrupted and runs on a pooled connection,
        within the usual timeouts, as writes and transactions always do. Inside a
        transaction it runs on the transaction's connection, to see its writes.
        """
        if query.reads_only and self.path != ":memory:" and self._current() is None:
            with suppress(sqlite3.OperationalError):
                return query.rows(self._read_here(query, params))
        return await super().fetch(query, **params)

    def _read_here(self, query: Query[Any], params: Mapping[str, Any]) -> list[Row]:
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

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()
        await super().close()


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
        """A pooled connection in autocommit mode, for a few statements (inside a
        transaction, the transaction's own)."""
        return self._state().pool.connection()

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection in a transaction: commit on success, else roll back."""
        return self._state().pool.transaction()

    @property
    def pool(self) -> _Pool:
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
