"""Statements: SQLAlchemy Core expressions compiled once per dialect into the driver's SQL.

A ``Query`` is built at import, next to the model it reads, and compiled for SQLite at
once, so a statement the data layer cannot run fails there and not in a request.
Rows come back as ``Row`` (a dict with attributes) or as the type a query names.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

from sqlalchemy import Boolean, Column, DateTime
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.dialects.sqlite import aiosqlite as aiosqlite_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import CompoundSelect, ExecutableReturnsRows, Select

from quart_app.data.base import UTCDateTime

# DATABASE_ECHO logs every statement the app runs, with its arguments.
_statements_log = logging.getLogger("quart_app.sql")


class Row(dict[str, Any]):
    """A result row: its columns by name, as ``row.title`` or ``row["title"]``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


R = TypeVar("R")

DIALECTS: dict[str, Dialect] = {
    "postgresql": asyncpg_dialect.dialect(),  # type: ignore[no-untyped-call]
    "sqlite": aiosqlite_dialect.dialect(),
}


@dataclass(frozen=True)
class Compiled:
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
        self._compiled: dict[str, Compiled] = {}
        # Refused here, when the model is imported, rather than at request time.
        self.compiled("sqlite")

    def compiled(self, dialect: str) -> Compiled:
        """The statement as *dialect*'s SQL text and parameter order."""
        found = self._compiled.get(dialect)
        if found is None:
            compiled = self.statement.compile(dialect=DIALECTS[dialect])
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
            found = Compiled(
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


def driver_arguments(
    compiled: Compiled,
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
