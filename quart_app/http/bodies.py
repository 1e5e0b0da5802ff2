"""Request bodies: JSON or a clear refusal, and what is left unread before an early answer."""

from __future__ import annotations

import json
from contextlib import suppress
from typing import Any, NoReturn

from quart import Response, request
from werkzeug.exceptions import BadRequest, HTTPException, UnsupportedMediaType

from quart_app.upstream.quart import CachedBlueprintsRequest

NOT_JSON = "Send the body as JSON with Content-Type: application/json"


class JSONRequest(CachedBlueprintsRequest):
    """A request whose ``get_json`` refuses a non-JSON body with 415, as Flask's does.

    Quart's own ``get_json`` returns ``None`` when the content type is not JSON, which
    would turn a wrongly-sent body into a confusing validation error. Being the app's
    request class, it also remembers Quart's blueprint list for the request
    (``quart_app.upstream.quart``).
    """

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """Parse the body as JSON; 415 when it is not declared as JSON."""
        if not (force or silent or self.is_json):
            raise UnsupportedMediaType(NOT_JSON)
        try:
            data = await super().get_json(force=force, silent=silent, cache=cache)
            # JSON may escape lone surrogates ("\ud800"); they are not text, and no
            # database driver can encode them.
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeError as error:
            if silent:
                return None
            raise BadRequest(f"Malformed JSON body: {error}") from error
        except RecursionError as error:
            # A few kilobytes of brackets exhaust the parser's stack; that is bad input.
            if silent:
                return None
            raise BadRequest("Malformed JSON body: nested too deeply") from error
        return data

    def on_json_loading_failed(self, error: Exception) -> NoReturn:
        """Answer a malformed JSON body with 400 and the parser's reason."""
        raise BadRequest(f"Malformed JSON body: {error}")


async def read_unread_body(response: Response) -> None:
    """Read what is left of the request's body before an early refusal goes out.

    A 401, 403 or 415 is decided before the body is read. Left unread, that body is
    still on the connection when the answer ends, and hypercorn then closes the
    connection, so the client's next request on it fails. Reading it (at most
    ``MAX_CONTENT_LENGTH``, within hypercorn's ``read_timeout``) keeps the connection
    usable; a 413's body is too large to read and its answer says ``Connection: close``.
    """
    if response.status_code >= 400 and response.status_code != 413 and request_has_body():
        with suppress(HTTPException):
            await request.get_data()


def request_has_body() -> bool:
    """True when the request declares a body: a non-zero length, or chunked."""
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "")
