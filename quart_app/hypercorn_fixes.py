"""Fixes for bugs in the installed hypercorn, applied by ``quart_app.serve`` in each worker.

Each fix names its upstream report. ``tests/test_http2.py`` checks that the bug is still
there without the fix, so that test fails once a hypercorn release fixes it: then delete
the fix and raise the lower bound on ``hypercorn`` in pyproject.toml.

HTTP/2: body data for a stream that has already been answered (pgjones/hypercorn#329)
    The app may answer before it has read a request body, e.g. a 401, 403, 413 or 415
    for a body declared larger than ``MAX_CONTENT_LENGTH``. hypercorn then forgets the
    stream, but the client goes on sending the body. hypercorn 0.18 looks each of those
    DATA frames' stream up, raises ``KeyError`` and drops the whole connection, with
    every request on it. The proposed upstream fixes (#312, #334) skip such frames
    without giving their bytes back to the connection's flow-control window; that
    window then shrinks by every unread body until the client cannot send any body
    on that connection (two 70 kB refusals were enough). This fix drops the data and
    gives the bytes back, as #365 does.
"""

from __future__ import annotations

from typing import Any

from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h2 import H2Protocol


class _AnsweredStream:
    """Stands in for a stream hypercorn has closed: what still arrives for it is dropped."""

    async def handle(self, event: StreamEvent) -> None:
        """Drop *event*: the stream's answer has already gone out."""


_ANSWERED = _AnsweredStream()


class _StreamsById(dict[int, Any]):
    """hypercorn's table of open HTTP/2 streams, where a closed one looks answered.

    hypercorn handles received body data with ``streams[id].handle(...)`` and then
    acknowledges the bytes. With the stand-in that lookup cannot fail, the data goes
    nowhere, and the acknowledgement keeps the connection's window open. Membership
    tests, ``pop`` and iteration still see only the streams that are really open.
    """

    def __missing__(self, stream_id: int) -> _AnsweredStream:
        return _ANSWERED


_hypercorn_init = H2Protocol.__init__


def _init_with_answered_streams(self: H2Protocol, *args: Any, **kwargs: Any) -> None:
    _hypercorn_init(self, *args, **kwargs)
    self.streams = _StreamsById(self.streams)


def apply() -> None:
    """Install every fix into hypercorn's classes; calling it again changes nothing."""
    H2Protocol.__init__ = _init_with_answered_streams  # type: ignore[method-assign]
