"""The worker's "shutting down" signal, for answers that would otherwise hold it open.

hypercorn lets the requests in flight finish, up to ``graceful_timeout``, before a
worker stops. A live stream never finishes by itself, so ``quart_app.serve``'s workers
call ``begin_draining`` as soon as the stop signal arrives, and each app ends its
streams then (``when_draining``). The bare ``hypercorn`` command has no such hook: its
streams are cut at ``graceful_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for typing: the supervisor of quart_app.serve imports this module, not Quart.
    from quart import Quart

_callbacks: dict[int, Callable[[], None]] = {}
_draining = False


def when_draining(app: Quart, callback: Callable[[], None]) -> None:
    """Call *callback* when this process starts shutting down (at once if it has),
    until *app* stops serving."""
    _callbacks[id(app)] = callback
    if _draining:
        callback()

    @app.after_serving
    async def forget() -> None:
        _callbacks.pop(id(app), None)


def begin_draining() -> None:
    """This process is shutting down: end what would hold it open."""
    global _draining
    _draining = True
    for callback in list(_callbacks.values()):
        callback()
