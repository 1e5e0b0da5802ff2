"""An ``X-Request-ID`` on every response, for tying log lines to requests."""

from __future__ import annotations

import os
import re

from quart import Response, g, request

HEADER = "X-Request-ID"
# An id from a proxy or client is kept only if it cannot smuggle anything into a log line.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def current_request_id() -> str:
    """This request's id: the caller's, when well-formed, else a new one."""
    if "request_id" not in g:
        sent = request.headers.get(HEADER, "")
        g.request_id = sent if _ACCEPTABLE.fullmatch(sent) else os.urandom(16).hex()
    request_id: str = g.request_id
    return request_id


def stamp(response: Response) -> None:
    """Put the request id on *response* (hypercorn's access log shows it)."""
    response.headers[HEADER] = current_request_id()
