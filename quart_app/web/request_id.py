"""An ``X-Request-ID`` on every response, for tying log lines to requests."""

from __future__ import annotations

import os
import re

from quart import Response, g, request

HEADER = "X-Request-ID"
_RAW_HEADER = HEADER.lower().encode()
# An id from a proxy or client is kept only if it cannot smuggle anything into a log line.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def current_request_id() -> str:
    """This request's id: the caller's, when well-formed, else a new one."""
    state = g._get_current_object()
    request_id: str | None = state.get("request_id")
    if request_id is None:
        # The raw ASGI header names (lower case), not headers.get: Werkzeug answers a
        # missing key by raising and catching an HTTP exception, and most requests
        # carry no id.
        raw = next((value for name, value in request.scope["headers"] if name == _RAW_HEADER), b"")
        sent = raw.decode("latin1")
        request_id = sent if _ACCEPTABLE.fullmatch(sent) else os.urandom(16).hex()
        state.request_id = request_id
    return request_id


def stamp(response: Response) -> None:
    """Put the request id on *response* (hypercorn's access log shows it)."""
    # add, not set: no view sets this header, and set would scan for it first.
    response.headers.add(HEADER, current_request_id())
