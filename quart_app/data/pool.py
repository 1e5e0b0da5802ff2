"""The pool both backends share: places given first come, first served, and
connections given back only when clean (``postgres.py``, ``sqlite.py`` fill it in).

A connection is held only for the statements that need it: ``fetch`` takes one, runs
one statement and gives it back; ``transaction()`` holds one for a few statements
that must commit together. Reads run in autocommit: no BEGIN, no ROLLBACK. Every wait
is bounded (``Timeouts``); a database that cannot be reached or stops answering raises
``DatabaseUnavailable``, which the app answers with 503 and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from quart_app.data.statements import Query, R, Row

logger = logging.getLogger(__name__)

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database could not be reached, or did not answer in time: a passing outage."""


class ConstraintViolation(Exception):
    """A statement broke a unique or foreign-key constraint."""


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


@dataclass(frozen=True)
class Timeouts:
    """Bounds, in seconds, on each kind of wait for the database."""

    connect: float
    statement: float
    pool: float


# The transaction the current task is inside, and the pool it came from: the pool's
# own statements run on that connection, so they see what the transaction wrote.
_in_transaction: ContextVar[tuple[Pool, Connection] | None] = ContextVar(
    "quart_app.data.transaction", default=None
)


class Pool(ABC):
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
        # Places taken, and requests in line for one (tests and operators read them).
        self.in_use = 0
        self.waiting = 0

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
            self.waiting += 1
            try:
                async with asyncio.timeout(self.timeouts.pool):
                    await self._places.acquire()
            except TimeoutError as error:
                raise DatabaseUnavailable("no database connection was free") from error
            finally:
                self.waiting -= 1
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
