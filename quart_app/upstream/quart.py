"""Quart: two answers it works out anew on every request, worked out once here.

``Quart.ensure_async`` (overridden with a cache, in ``App``)
    Quart runs ``ensure_async`` (``inspect.iscoroutinefunction``) on every hook, error
    handler and view of every request, about fifteen times for an authenticated API
    read, though the answer for a given function never changes. The cache relies on
    Quart's ``ensure_async`` being a method that depends on the function alone: the
    function itself when it is a coroutine function, else ``sync_to_async(func)``.

``Request.blueprints`` (a property, overridden with a cache in ``CachedBlueprintsRequest``)
    Quart reads it three times a request (before, after and teardown hooks), and
    derives it from the endpoint each time. The cache relies on Quart matching the
    request to its rule (``RequestContext.push``) before anything reads it.

No upstream report: both are the cost of Quart's generality, not bugs.
``tests/test_upstream.py`` fails if either stops being what the cache assumes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

from quart import Quart, Request

P = ParamSpec("P")
T = TypeVar("T")


class App(Quart):
    """Quart, deciding once per function whether a hook or view needs wrapping."""

    # Bounds the memory a stream of distinct callables (closures) could take.
    ASYNC_FUNCTIONS_KEPT = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._async_functions: dict[Callable[..., Any], Callable[..., Awaitable[Any]]] = {}

    @overload
    def ensure_async(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]: ...

    @overload
    def ensure_async(self, func: Callable[P, T]) -> Callable[P, Awaitable[T]]: ...

    def ensure_async(
        self, func: Callable[P, Awaitable[T]] | Callable[P, T]
    ) -> Callable[P, Awaitable[T]]:
        """Quart's ``ensure_async``, remembered per function."""
        try:
            return self._async_functions[func]
        except KeyError:
            found: Callable[P, Awaitable[T]] = super().ensure_async(func)
            if len(self._async_functions) >= self.ASYNC_FUNCTIONS_KEPT:
                self._async_functions.clear()
            self._async_functions[func] = found
            return found
        except TypeError:  # an unhashable callable
            return super().ensure_async(func)


class CachedBlueprintsRequest(Request):
    """Quart's request, remembering its list of blueprints."""

    _blueprints: list[str] | None = None

    @property
    def blueprints(self) -> list[str]:
        """Quart's list of the matched blueprint and its parents, worked out once."""
        if self._blueprints is None:
            self._blueprints = super().blueprints
        return self._blueprints
