"""aiosqlite: a connection's worker thread, ``Connection._thread``.

Each aiosqlite connection runs its statements on a thread of its own, started when
the connection is awaited. When connecting fails (a missing directory, a file that is
not a database), aiosqlite tells that thread to stop and raises, without waiting for
it. If the event loop closes before the thread has stopped, the thread's last answer
goes to the closed loop and it dies with "Event loop is closed" (an unhandled thread
exception, an error under pytest). ``data.sqlite.SQLitePool._open`` therefore waits for the
thread with ``join_worker_thread`` before raising. aiosqlite has no public way to
wait for it (omnilib/aiosqlite#387 asks for ``Connection.join()``); once it has one,
``tests/test_upstream.py`` fails, and this module goes.
"""

from __future__ import annotations

import aiosqlite


def join_worker_thread(connection: aiosqlite.Connection) -> None:
    """Wait (blocking) until *connection*'s worker thread has stopped."""
    connection._thread.join()
