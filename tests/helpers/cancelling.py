"""Cancelling an operation exactly at one of its awaits, as ``Task.cancel`` would there."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class Oops(Exception):
    """The caller's own error inside a transaction."""


async def cancelled_at(operation: Callable[[], Coroutine[Any, Any, Any]], k: int) -> bool:
    """Run *operation* here, cancelling it at its k-th suspension (counted from 0).

    Returns whether the cancellation reached it: false once *operation* finished in
    fewer than k + 1 suspensions. Cancelling mirrors ``Task.cancel``: the future the
    coroutine waits on is cancelled and the coroutine resumed, so ``CancelledError``
    rises from that very await. An operation that goes on after it was cancelled
    (swallowing or replacing the ``CancelledError``) fails the test.
    """
    coroutine = operation()
    suspensions = 0
    throw = False
    try:
        while True:
            waited = coroutine.throw(asyncio.CancelledError()) if throw else coroutine.send(None)
            throw = False
            if isinstance(waited, asyncio.Future):
                waited._asyncio_future_blocking = False
                if suspensions == k and not waited.cancel():
                    throw = True  # done already: cancel at the next step, as a Task does
                await asyncio.wait([waited])
            elif suspensions == k:
                throw = True  # a bare yield (sleep(0))
            suspensions += 1
    except (StopIteration, Oops):
        went_on = suspensions > k
    except asyncio.CancelledError:
        return True
    finally:
        coroutine.close()
    assert not went_on, f"cancelled at suspension {k}, the operation went on to its end"
    return False
