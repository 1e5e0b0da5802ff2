"""SQLite: aiosqlite connections in the shared pool, reads on the loop's own thread,
every statement bounded by a deadline, and which errors are outages."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any

import aiosqlite
from sqlalchemy.engine import make_url

from quart_app.data.base import SQLITE_DATETIME, UTCDateTime
from quart_app.data.pool import Connection, Pool, Timeouts
from quart_app.data.statements import DIALECTS, Compiled, Query, R, Row, driver_arguments
from quart_app.upstream.aiosqlite import join_worker_thread

_UTC_DATETIME = UTCDateTime()


def to_sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        naive_utc = _UTC_DATETIME.process_bind_param(value, DIALECTS["sqlite"])
        assert naive_utc is not None
        return naive_utc.strftime(SQLITE_DATETIME)
    return value


def converted(compiled: Compiled, rows: Iterable[sqlite3.Row]) -> list[Row]:
    result = [Row(row) for row in rows]
    for name, convert in compiled.converters:
        for row in result:
            row[name] = convert(row[name])
    return result


class SQLiteLink:
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


class SQLiteConnection(Connection):
    dialect = "sqlite"
    raw: SQLiteLink

    def __init__(self, raw: SQLiteLink, echo: bool, statement_timeout: float) -> None:
        super().__init__(raw, echo)
        self.statement_timeout = statement_timeout

    def _start(self) -> aiosqlite.Connection:
        self.raw.deadline = time.monotonic() + self.statement_timeout
        return self.raw.driver

    async def _rows(self, query: Query[Any], params: Mapping[str, Any]) -> list[Row]:
        compiled = query.compiled(self.dialect)
        arguments = driver_arguments(compiled, params, self.echo, to_sqlite)
        # execute_fetchall: statement and rows in one hand-off to the connection's thread.
        rows = await self._start().execute_fetchall(compiled.sql, arguments)
        return converted(compiled, rows)

    async def execute(self, query: Query[Any], **params: Any) -> int:
        compiled = query.compiled(self.dialect)
        arguments = driver_arguments(compiled, params, self.echo, to_sqlite)
        async with self._start().execute(compiled.sql, arguments) as cursor:
            return cursor.rowcount

    async def _run(self, sql: str) -> None:
        await self._start().execute_fetchall(sql)


# A read on the loop's thread holds up every other request of the worker meanwhile.
READ_HERE_SECONDS = 0.02

# SQLite's result codes (the low byte of an extended code) of a passing condition: a
# lock held too long, a statement past its deadline, a full disk, a file that cannot
# be opened or read. The rest (SQLITE_ERROR: no such table, a syntax error) are faults.
SQLITE_OUTAGES = frozenset(
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
    return isinstance(error, sqlite3.Error) and code is not None and code & 0xFF in SQLITE_OUTAGES


class SQLitePool(Pool):
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

    async def _open(self) -> SQLiteLink:
        driver = aiosqlite.connect(self.path, isolation_level=None, timeout=self.timeouts.statement)
        try:
            await driver
        except BaseException:
            # A failed connect leaves aiosqlite's worker thread stopping on its own; if
            # the loop closed first, the thread would raise "Event loop is closed".
            # aiosqlite has no join() yet (omnilib/aiosqlite#387): see upstream/aiosqlite.py.
            await asyncio.shield(asyncio.to_thread(join_worker_thread, driver))
            raise
        link = SQLiteLink(driver)
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

    def _connection(self, raw: SQLiteLink) -> Connection:
        return SQLiteConnection(raw, self.echo, self.timeouts.statement)

    def is_outage(self, error: BaseException, raw: SQLiteLink | None) -> bool:
        return sqlite_outage(error)

    def _reusable(self, raw: SQLiteLink) -> bool:
        # Read on the loop's thread: nothing runs on the connection's own thread now.
        return not raw.driver.in_transaction

    async def _close(self, raw: SQLiteLink) -> None:
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
        arguments = driver_arguments(compiled, params, self.echo, to_sqlite)
        self._read_deadline = time.perf_counter() + READ_HERE_SECONDS
        return converted(compiled, reader.execute(compiled.sql, arguments).fetchall())

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
