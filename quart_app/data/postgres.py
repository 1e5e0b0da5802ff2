"""PostgreSQL: asyncpg connections in the shared pool, and which errors are outages."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from quart_app.data.pool import Connection, Pool, Timeouts
from quart_app.data.statements import Query, Row, driver_arguments


class PostgresConnection(Connection):
    dialect = "postgresql"

    async def _rows(self, query: Query[Any], params: Mapping[str, Any]) -> list[Row]:
        compiled = query.compiled(self.dialect)
        records = await self.raw.fetch(compiled.sql, *driver_arguments(compiled, params, self.echo))
        return [Row(record) for record in records]

    async def execute(self, query: Query[Any], **params: Any) -> int:
        compiled = query.compiled(self.dialect)
        status = await self.raw.execute(
            compiled.sql, *driver_arguments(compiled, params, self.echo)
        )
        # "UPDATE 3", "DELETE 0", "INSERT 0 1": the count is the last word.
        return int(status.rsplit(" ", 1)[-1])

    async def _run(self, sql: str) -> None:
        await self.raw.execute(sql)


# The driver's errors that mean PostgreSQL is out of reach or did not answer in time:
# retried later, they may succeed. Everything else is a fault of the code (a 500).
POSTGRES_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; ConnectionError is one
    TimeoutError,  # connect or command timeout
    asyncpg.exceptions.PostgresConnectionError,  # 08: the connection failed or is gone
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutdown, statement_timeout
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.exceptions.LockNotAvailableError,  # 55P03: lock_timeout
    asyncpg.exceptions.TransactionRollbackError,  # 40: deadlock, serialization failure
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
)


class PostgresPool(Pool):
    """asyncpg connections, opened on demand, behind ``Pool``'s places.

    Not asyncpg's own pool: with a place already taken there is nothing left for it to
    arbitrate, and it costs every release a shielded task and a reset.
    """

    violation = asyncpg.exceptions.IntegrityConstraintViolationError

    def __init__(self, url: str, size: int, timeouts: Timeouts, echo: bool = False) -> None:
        super().__init__(url, size, timeouts, echo)
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)

    async def _open(self, application_name: str = "quart_app") -> asyncpg.Connection:
        return await asyncpg.connect(
            self._dsn,
            timeout=self.timeouts.connect,
            command_timeout=self.timeouts.statement,
            server_settings={
                # The server gives up too, so a cancelled statement frees its locks.
                "statement_timeout": str(int(self.timeouts.statement * 1000)),
                "idle_in_transaction_session_timeout": str(int(self.timeouts.statement * 2000)),
                # Which connection is which, in pg_stat_activity.
                "application_name": application_name,
            },
        )

    def _connection(self, raw: asyncpg.Connection) -> Connection:
        return PostgresConnection(raw, self.echo)

    async def open_unpooled(self, application_name: str) -> asyncpg.Connection:
        """A connection outside the pool's places, with its settings, for ``LISTEN``.

        The caller closes it.
        """
        return await self._open(application_name)

    def is_outage(self, error: BaseException, raw: asyncpg.Connection | None) -> bool:
        if isinstance(error, POSTGRES_OUTAGES):
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
        except POSTGRES_OUTAGES:
            raw.terminate()
