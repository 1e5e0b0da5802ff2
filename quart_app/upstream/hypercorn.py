"""hypercorn and h11: fixes patched into their code by ``quart_app.serve`` in each worker.

Each fix names the internal it replaces and its upstream report, if any. A test checks
that the bug is still there without the fix, so it fails once a release fixes it: then
delete the fix and raise the lower bound in pyproject.toml. ``apply()`` patches, as
``quart_app.serve``'s workers do; the bare ``hypercorn`` command runs without them.

HTTP/2: body data for a stream that has already been answered (pgjones/hypercorn#329)
    Internal: ``H2Protocol.streams``, the dict of open streams that ``H2Protocol.__init__``
    creates; it is replaced by one that answers a closed stream's id (``apply`` wraps
    ``__init__``). Test: ``tests/test_http2.py``,
    ``test_installed_hypercorn_still_drops_the_connection_without_the_fix``.
    The app may answer before it has read a request body, e.g. a 401, 403, 413 or 415
    for a body declared larger than ``MAX_CONTENT_LENGTH``. hypercorn then forgets the
    stream, but the client goes on sending the body. hypercorn 0.18 looks each of those
    DATA frames' stream up, raises ``KeyError`` and drops the whole connection, with
    every request on it. The proposed upstream fixes (#312, #334) skip such frames
    without giving their bytes back to the connection's flow-control window; that
    window then shrinks by every unread body until the client cannot send any body
    on that connection (two 70 kB refusals were enough). This fix drops the data and
    gives the bytes back, as #365 does.

HTTP/1.1: obsolete line folding (h11 unfolds it; no upstream report)
    A header line starting with a space or tab continues the line before (obs-fold).
    h11 joins the two, as RFC 9112 §5.2 allows, but a proxy in front may read the
    continuation as a header of its own, so the two disagree on what was sent. The
    fix makes h11 refuse it: 400, and hypercorn closes the connection. Internal:
    ``h11._readers._obsolete_line_fold``, replaced. Test: ``tests/test_upstream.py``,
    ``test_h11_still_unfolds_obsolete_line_folding``.

HTTP/1.1: ``chunked`` that is not the last transfer coding (h11 answers 501; no report)
    h11 refuses every coding but a lone ``chunked`` with 501 Not Implemented, right for
    a coding it does not know (``gzip, chunked``). When ``chunked`` is not the final
    coding, or comes twice, the body's length cannot be known at all, and RFC 9112
    §6.1 requires 400; the fix answers that. hypercorn closes the connection either way.
    Internal: ``h11._events.normalize_and_validate`` (h11's ``_headers`` function, as
    ``_events`` imports it), wrapped. Test: ``tests/test_upstream.py``,
    ``test_h11_still_answers_501_when_chunked_is_not_the_final_coding``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import h11._events
import h11._readers
from h11 import LocalProtocolError
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


# hypercorn's and h11's own, kept before apply() replaces them (and for the tests).
H2_PROTOCOL_INIT = H2Protocol.__init__


def _init_with_answered_streams(self: H2Protocol, *args: Any, **kwargs: Any) -> None:
    H2_PROTOCOL_INIT(self, *args, **kwargs)
    self.streams = _StreamsById(self.streams)


H11_OBSOLETE_LINE_FOLD = h11._readers._obsolete_line_fold
H11_NORMALIZE_AND_VALIDATE = h11._events.normalize_and_validate  # type: ignore[attr-defined]


def _refuse_line_folding(lines: Iterable[bytes]) -> Iterator[bytes]:
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise LocalProtocolError("obsolete line folding is not accepted", error_status_hint=400)
        yield line


def _unframeable(headers: Any) -> bool:
    """True when ``chunked`` is not the one, final transfer coding of *headers*."""
    codings = [
        coding.strip().lower()
        for name, value in headers
        if bytes(name).lower() == b"transfer-encoding"
        for coding in bytes(value).split(b",")
    ]
    return b"chunked" in codings and (codings[-1] != b"chunked" or codings.count(b"chunked") > 1)


def _validate_headers_strictly(headers: Any, _parsed: bool = False) -> Any:
    try:
        return H11_NORMALIZE_AND_VALIDATE(headers, _parsed=_parsed)
    except LocalProtocolError as error:
        if error.error_status_hint == 501 and _unframeable(headers):
            raise LocalProtocolError(
                "chunked must be the final transfer coding, applied once", error_status_hint=400
            ) from error
        raise


def apply() -> None:
    """Install every fix into hypercorn's and h11's code; calling it again changes nothing."""
    H2Protocol.__init__ = _init_with_answered_streams  # type: ignore[method-assign]
    h11._readers._obsolete_line_fold = _refuse_line_folding
    h11._events.normalize_and_validate = _validate_headers_strictly  # type: ignore[attr-defined]
