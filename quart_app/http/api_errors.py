"""How the API answers an error: ``{"error": ...}`` JSON, with the challenge on a 401.

Used by every layer that refuses a request (access checks, CSRF, error handlers), so
an API caller gets one shape of error whoever refuses it.
"""

from __future__ import annotations

from quart import Response, jsonify, request
from werkzeug.exceptions import HTTPException

API_PREFIX = "/api/"
WWW_AUTHENTICATE = 'Bearer realm="quart_app"'


def is_api_request() -> bool:
    """True when the request's path is under ``/api/``.

    Decided from the path, not ``request.url_rule``, so it also holds for unknown
    paths and 405s, where there is no rule.
    """
    return request.path.startswith(API_PREFIX) or request.path == API_PREFIX.rstrip("/")


def _message(error: HTTPException) -> str:
    # Werkzeug's stock descriptions are long sentences; a description set by abort() is ours.
    if error.description and error.description != type(error).description:
        return error.description
    return error.name


def json_error(message: str, status: int) -> tuple[Response, int, dict[str, str]]:
    """An API error answer: ``{"error": message}``, and on a 401 the challenge RFC 9110 requires."""
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else {}
    return jsonify(error=message), status, headers


def api_error_response(error: HTTPException) -> Response:
    """The JSON form of *error*, keeping headers such as ``Allow`` and ``Retry-After``."""
    response, status, headers = json_error(_message(error), error.code or 500)
    response.status_code = status
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    response.headers.update(headers)
    return response
