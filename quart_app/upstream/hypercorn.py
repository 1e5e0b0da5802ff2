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

HTTP/2: ``keep_alive_max_requests`` lets streams past it, and loses those in progress
    (no upstream report; pgjones/hypercorn#146 is the rapid reset it is meant to stop)
    Streams the client resets at once do not count against MAX_CONCURRENT_STREAMS, so
    only this limit ends a connection that opens and cancels streams without pause
    (CVE-2023-44487). In hypercorn 0.18 it does not hold: ``_handle_events`` checks
    ``keep_alive_requests > keep_alive_max_requests`` after creating each stream, so one
    stream over the limit reaches the app, and after its GOAWAY it goes on creating
    every stream h2 has parsed from the same read (1,100-2,700 at full speed). Past 999
    streams waiting in one read the priority tree (``priority.PriorityTree()``, 1,000
    entries with its root) raises ``TooManyStreamsError``, which drops the connection
    unhandled, GOAWAY unsent. And that GOAWAY is h2's ``close_connection``, which puts
    h2 in its closed state: the answers to the streams it counts as accepted fail
    silently, and the connection closes only at ``keep_alive_timeout``.
    The fix: ``H2Protocol.__init__`` (wrapped by ``apply``) makes each connection a
    ``_KeepAliveLimitedH2``, whose ``_handle_events`` lets at most the limit of streams
    through to hypercorn's own. At the limit it sends SETTINGS MAX_CONCURRENT_STREAMS 0,
    as hypercorn does when shutting down; a stream after it gets
    RST_STREAM(REFUSED_STREAM), which a client may safely retry on another connection.
    Once no accepted stream is left in progress or with an answer to send (checked
    after ``_handle_events``, ``_send_data`` and ``stream_send``), a GOAWAY naming the
    last accepted stream closes the connection. The GOAWAY comes last because h2 as a
    client (httpx's, the tests') treats every frame after one as a protocol error: the
    answers would be lost. A client that goes on opening streams past
    ``h2_max_concurrent_streams`` refusals (more than one that heeds the setting can
    have had open when it arrived) is cut at once, with GOAWAY(ENHANCE_YOUR_CALM). The
    priority tree is sized for the limit, and ``_priority_updated`` keeps only hints
    about streams hypercorn has open, so PRIORITY frames cannot fill it either.
    Internals: ``H2Protocol._handle_events``, ``_send_data``, ``stream_send`` and
    ``_priority_updated`` (overridden), ``keep_alive_requests``, ``streams``,
    ``stream_buffers``, ``priority`` and ``_flush``. Tests: ``tests/test_upstream.py``,
    ``test_installed_hypercorn_still_lets_streams_past_keep_alive_max_requests``,
    ``test_installed_hypercorn_still_loses_requests_in_progress_at_the_limit`` and
    ``test_hypercorn_h2_keep_alive_internals_are_still_there``.

HTTP/1.1: obsolete line folding (h11 unfolds it; no upstream report)
    A header line starting with a space or tab continues the line before (obs-fold).
    h11 joins the two, as RFC 9112 §5.2 allows, but a proxy in front may read the
    continuation as a header of its own, so the two disagree on what was sent. The
    fix makes h11 refuse it: 400, and hypercorn closes the connection. Internal:
    ``h11._readers._obsolete_line_fold``, replaced. Test: ``tests/test_upstream.py``,
    ``test_h11_still_unfolds_obsolete_line_folding``.

HTTP/1.1: a Transfer-Encoding other than a lone ``chunked`` (h11 answers 501; no report)
    h11 refuses every transfer coding but a lone ``chunked`` (``gzip, chunked``,
    ``chunked, gzip``, ``xchunked``, two headers) with 501 Not Implemented. Whatever the
    coding, the body's length is then unknown to this server while a proxy in front may
    have framed it; RFC 9112 §6.1 and the contract ask for 400, and the fix answers
    that. hypercorn closes the connection either way. Internal:
    ``h11._events.normalize_and_validate`` (h11's ``_headers`` function, as ``_events``
    imports it), wrapped: its only 501 is this refusal. Test: ``tests/test_upstream.py``,
    ``test_h11_still_answers_501_when_chunked_is_not_the_final_coding``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Any, cast

import h2.errors
import h2.events
import h2.exceptions
import h11._events
import h11._readers
from h2.settings import SettingCodes
from h11 import LocalProtocolError
from hypercorn.events import Closed
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.h2 import H2Protocol
from priority.priority import PriorityTree


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


class _KeepAliveLimitedH2(H2Protocol):
    """hypercorn's HTTP/2 connection, where ``keep_alive_max_requests`` holds.

    At most that many streams reach the app; later ones are refused, and once the
    accepted ones are answered a GOAWAY naming the last of them closes the connection
    (at once, if the client keeps opening streams).
    """

    keep_alive_last_stream: int  # the last stream handed to hypercorn: GOAWAY's last
    keep_alive_refused: int  # streams refused past the limit
    keep_alive_reached: bool
    keep_alive_closing: bool

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        if self.keep_alive_closing:
            return  # the rest of the last read, after the connection was closed
        if self.context.terminated.is_set():
            # Shutting down: hypercorn resets every new stream itself.
            await super()._handle_events(events)
            await self._close_when_done()
            return
        room = self.config.keep_alive_max_requests - self.keep_alive_requests
        refused: set[int] = set()
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                if room > 0:
                    room -= 1
                    self.keep_alive_last_stream = event.stream_id
                else:
                    refused.add(event.stream_id)
        if room <= 0 and not self.keep_alive_reached:
            # As hypercorn does when shutting down: no more streams, please. The GOAWAY
            # waits until the accepted streams are answered (_close_when_done).
            self.keep_alive_reached = True
            self.connection.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 0})
        for stream_id in sorted(refused):
            # A stream the client reset in the same read is closed: nothing to refuse.
            with suppress(h2.exceptions.ProtocolError):
                self.connection.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
        self.keep_alive_refused += len(refused)
        if refused:
            events = [
                event
                for event in events
                if not (isinstance(event, h2.events.RequestReceived) and event.stream_id in refused)
            ]
        # What else arrives for a refused stream is harmless there: its body data goes
        # to the answered stand-in and is acknowledged, its end and reset find nothing
        # to close, and _priority_updated drops its priority.
        await super()._handle_events(events)
        await self._close_when_done()

    async def _send_data(self, stream_id: int) -> None:
        await super()._send_data(stream_id)
        if self.keep_alive_reached:  # an answer may just have been completed
            await self._close_when_done()

    async def stream_send(self, event: StreamEvent) -> None:
        await super().stream_send(event)
        if self.keep_alive_reached and isinstance(event, StreamClosed):
            await self._close_when_done()

    async def _priority_updated(self, event: h2.events.PriorityUpdated) -> None:
        # hypercorn would add a stream it does not know (idle, refused, or answered) to
        # the priority tree, where it stays; only created streams ever leave it.
        if event.stream_id in self.stream_buffers and (
            not event.depends_on or event.depends_on in self.stream_buffers
        ):
            await super()._priority_updated(event)

    def _last_stream_id(self) -> int:
        # Stream 1 of an h2c upgrade is created before any read (H2Protocol.initiate).
        return max(self.keep_alive_last_stream, 1 if self.keep_alive_requests else 0)

    async def _close_when_done(self) -> None:
        """Past the limit: close once nothing accepted is left, or the client persists."""
        if not self.keep_alive_reached or self.keep_alive_closing:
            return
        if self.keep_alive_refused > self.config.h2_max_concurrent_streams:
            await self._end_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        elif not self.streams and not self.stream_buffers:
            await self._end_connection(h2.errors.ErrorCodes.NO_ERROR)

    async def _end_connection(self, error_code: h2.errors.ErrorCodes) -> None:
        self.keep_alive_closing = True
        with suppress(h2.exceptions.ProtocolError):  # h2 is closed already (client's GOAWAY)
            self.connection.close_connection(error_code, last_stream_id=self._last_stream_id())
        await self._flush()
        await self.send(Closed())


def _init_with_fixes(self: H2Protocol, *args: Any, **kwargs: Any) -> None:
    H2_PROTOCOL_INIT(self, *args, **kwargs)
    self.streams = _StreamsById(self.streams)
    # Room for every stream the connection may create (the root is an entry too).
    self.priority = PriorityTree(maximum_streams=max(1000, self.config.keep_alive_max_requests + 1))
    # The connection's own methods: hypercorn's, but for the few the class overrides.
    self.__class__ = _KeepAliveLimitedH2
    limited = cast(_KeepAliveLimitedH2, self)
    limited.keep_alive_last_stream = 0
    limited.keep_alive_refused = 0
    limited.keep_alive_reached = False
    limited.keep_alive_closing = False


H11_OBSOLETE_LINE_FOLD = h11._readers._obsolete_line_fold
H11_NORMALIZE_AND_VALIDATE = h11._events.normalize_and_validate  # type: ignore[attr-defined]


def _refuse_line_folding(lines: Iterable[bytes]) -> Iterator[bytes]:
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise LocalProtocolError("obsolete line folding is not accepted", error_status_hint=400)
        yield line


def _validate_headers_strictly(headers: Any, _parsed: bool = False) -> Any:
    try:
        return H11_NORMALIZE_AND_VALIDATE(headers, _parsed=_parsed)
    except LocalProtocolError as error:
        if error.error_status_hint == 501:
            raise LocalProtocolError(str(error), error_status_hint=400) from error
        raise


def apply() -> None:
    """Install every fix into hypercorn's and h11's code; calling it again changes nothing."""
    H2Protocol.__init__ = _init_with_fixes  # type: ignore[method-assign]
    h11._readers._obsolete_line_fold = _refuse_line_folding
    h11._events.normalize_and_validate = _validate_headers_strictly  # type: ignore[attr-defined]
