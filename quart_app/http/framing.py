"""Requests whose framing two HTTP parsers could read differently: refused, connection closed.

Behind a proxy, a request that the proxy and hypercorn split into messages differently
lets an attacker hide a second request inside the first one's body (request
smuggling). RFC 9112 asks a server to reject such a request or to read it one
defined way, and in any case to close the connection after answering it (§6.1), so
nothing left on the connection is read as a request.

hypercorn's parser (h11) already refuses conflicting or malformed Content-Length
values (400) and any transfer coding but a lone ``chunked`` (501, made 400 by
``quart_app.upstream.hypercorn``), and closes the connection. These are left, and
refused here, before the app, on every server that serves it:

- ``Content-Length`` together with ``Transfer-Encoding`` (pgjones/hypercorn#279): h11
  reads the body as chunked; a proxy may have read it by its length.
- more than one ``Content-Type`` (pgjones/hypercorn#280): a proxy that checks the
  first may pass a body the app reads as the second.
- ``CONNECT`` (pgjones/hypercorn#277): this app is no proxy and opens no tunnel, but a
  proxy in front may believe one is open and forward anything through it.

The line folding h11 takes in its stride is refused inside h11 by
``quart_app.upstream.hypercorn`` in each worker of ``quart_app.serve``.
"""

from __future__ import annotations

import json

from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope


def framing_problem(scope: Scope) -> tuple[int, str] | None:
    """The status and message that refuse this request, or ``None`` if it is sound."""
    if scope["type"] != "http":
        return None
    if scope["method"] == "CONNECT":
        return 405, "CONNECT is not supported: this server is not a proxy"
    lengths = encodings = content_types = 0
    for name, _value in scope["headers"]:
        if name == b"content-length":
            lengths += 1
        elif name == b"transfer-encoding":
            encodings += 1
        elif name == b"content-type":
            content_types += 1
    if lengths and encodings:
        return 400, "Content-Length and Transfer-Encoding together are ambiguous"
    if content_types > 1:
        return 400, "More than one Content-Type"
    return None


class RequestFramingGuard:
    """ASGI middleware answering ``framing_problem``'s requests and closing the connection."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Refuse an ambiguous request; pass every other one to the app."""
        problem = framing_problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message = problem
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 405:
            headers.append((b"allow", b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"))
        if str(scope.get("http_version", "1.1")).startswith("1"):
            # HTTP/1 only: in HTTP/2 each request is its own stream and the header is
            # forbidden. h11 sees it and closes the connection after this answer.
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
