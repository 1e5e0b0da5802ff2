"""Waiting for a condition: re-check it until it holds, or fail saying what never came.

Tests use these instead of a fixed sleep (too short on a loaded machine, time wasted on
an idle one) or a polling loop of their own (each with its own bound, and a failure
that says nothing). ``eventually`` takes a plain or an async condition.

A condition holds when it returns a truthy value, which is handed back: ``eventually``
can wait for a row, a log line or a response as well as for ``True`` (a condition may
return ``None`` for "not yet": the value handed back is typed without it). After *within*
seconds without it the wait fails with ``NeverHappened`` (an ``AssertionError``),
naming *what* was awaited and the last value seen. Exceptions of the types in
*ignoring* count as "not yet" (a server not listening yet refuses connections); the
last one is chained to the failure.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

WITHIN = 10.0
EVERY = 0.05


class NeverHappened(AssertionError):
    """The condition did not hold within the time allowed."""


def _failure(
    what: str, condition: object, within: float, checks: int, last: object
) -> NeverHappened:
    awaited = what or getattr(condition, "__qualname__", repr(condition))
    return NeverHappened(
        f"waited {within:g} s ({checks} checks) for {awaited}; last seen: {last!r}"
    )


@overload
async def eventually(
    condition: Callable[[], Awaitable[T | None]],
    *,
    within: float = WITHIN,
    every: float = EVERY,
    what: str = "",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T: ...


@overload
async def eventually(
    condition: Callable[[], T | None],
    *,
    within: float = WITHIN,
    every: float = EVERY,
    what: str = "",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T: ...


async def eventually(
    condition: Callable[[], Any],
    *,
    within: float = WITHIN,
    every: float = EVERY,
    what: str = "",
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """The first truthy value *condition* returns (awaited if it is awaitable).

    Checked at once, then every *every* seconds; ``NeverHappened`` once *within*
    seconds have passed without one. A check still running at the deadline is let
    finish: a wait that must not outlast its bound belongs in ``asyncio.timeout``.
    """
    deadline = time.monotonic() + within
    checks = 0
    last: object = None
    error: BaseException | None = None
    while True:
        checks += 1
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
        except ignoring as raised:
            last, error = raised, raised
        else:
            if value:
                return value
            last, error = value, None
        if time.monotonic() >= deadline:
            raise _failure(what, condition, within, checks, last) from error
        await asyncio.sleep(every)
