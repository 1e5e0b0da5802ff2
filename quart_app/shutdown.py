"""Graceful shutdown under hypercorn's multi-worker supervisor.

With ``workers >= 1`` hypercorn's supervisor answers SIGTERM by setting a shared
shutdown event; each worker then stops accepting and drains its requests for up to
``graceful_timeout``. But as soon as the first worker has exited, the supervisor
calls ``terminate()`` on the others, and a worker has no SIGTERM handler of its own,
so a worker still draining would die with requests in flight.

A supervised worker therefore ignores SIGTERM: the shutdown event alone stops it,
bounded by ``graceful_timeout``, and the supervisor's process waits for it on exit.
(systemd's SIGKILL after ``TimeoutStopSec`` remains the backstop.)
"""

from __future__ import annotations

import multiprocessing
import signal

from quart import Quart


def ignore_sigterm_in_supervised_worker() -> bool:
    """Ignore SIGTERM when hypercorn's supervisor runs us; True if it did.

    A process that already handles SIGTERM (hypercorn without workers, or any other
    server) is left alone.
    """
    supervised = multiprocessing.parent_process() is not None
    if supervised and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return True
    return False


async def _before_serving() -> None:
    ignore_sigterm_in_supervised_worker()


def init_app(app: Quart) -> None:
    """Apply the SIGTERM rule when *app* starts serving."""
    app.before_serving(_before_serving)
