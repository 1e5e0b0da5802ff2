"""What every response gets on its way out, in one after-request hook.

One hook rather than one per concern: each hook costs every request a coroutine
check and an await, and these always run together.
"""

from __future__ import annotations

from quart import Quart, Response, request

from quart_app.http.bodies import read_unread_body
from quart_app.web.i18n import mark_language
from quart_app.web.request_id import stamp
from quart_app.web.security_headers import harden


async def finish_response(response: Response) -> Response:
    """Request id, hardening headers, on HTML the language; an early refusal's body read."""
    await read_unread_body(response)
    drop_type_of_no_body(response)
    stamp(response)
    is_html = response.mimetype == "text/html"
    harden(response, is_html=is_html)
    if is_html:
        mark_language(response)
    return response


def drop_type_of_no_body(response: Response) -> None:
    """No ``Content-Type`` on a 204; Quart's automatic OPTIONS answer becomes one.

    Quart answers OPTIONS with an empty 200 carrying ``Allow``, and gives it (like any
    empty response) ``text/html``: a client would look for a page that is not there.
    """
    status = response.status_code
    if status == 200 and request.method == "OPTIONS" and not response.content_length:
        response.status_code = status = 204
    if status == 204:
        response.headers.remove("Content-Type")


def init_app(app: Quart) -> None:
    """Finish every response of *app*."""
    app.after_request(finish_response)
