"""The app's error handlers: JSON under ``/api/``, HTML elsewhere, and the request class
(``http.bodies.JSONRequest``: Flask's 415 for a non-JSON body)."""

from __future__ import annotations

from pydantic import ValidationError
from quart import Quart, Response, current_app, jsonify, redirect
from quart.typing import ResponseReturnValue
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.wrappers import Response as WerkzeugResponse

from quart_app.data.pool import DatabaseUnavailable
from quart_app.http.api_errors import api_error_response, is_api_request
from quart_app.http.bodies import JSONRequest
from quart_app.security.safe_redirects import login_url_for_current_request


async def handle_http_exception(error: HTTPException) -> ResponseReturnValue:
    """JSON under ``/api/``; elsewhere a sign-in redirect for 401 or Quart's HTML page."""
    response: Response | WerkzeugResponse
    if is_api_request():
        response = api_error_response(error)
    elif error.code == 401:
        return redirect(login_url_for_current_request())
    else:
        response = error.get_response()
    if error.code == 413:
        # The rest of the oversized body is still on its way and will not be read: the
        # connection cannot carry another request, so tell the client not to reuse it.
        response.headers["Connection"] = "close"
    return response


def _field_errors(error: Exception) -> dict[str, str]:
    if not isinstance(error, ValidationError):
        return {"body": str(error)}
    fields: dict[str, str] = {}
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"]) or "body"
        fields[name] = f"{fields[name]}; {item['msg']}" if name in fields else item["msg"]
    return fields


async def handle_validation_error(error: RequestSchemaValidationError) -> ResponseReturnValue:
    """422 naming every invalid field: the JSON parsed, but its content is wrong."""
    body = jsonify(error="Invalid input", fields=_field_errors(error.validation_error))
    return body, 422


async def handle_database_unavailable(error: DatabaseUnavailable) -> ResponseReturnValue:
    """503 with ``Retry-After``: the database could not be reached or did not answer in time.

    A passing condition the client may retry; a statement that fails is a bug (500).
    """
    current_app.logger.warning("database unavailable: %s", error)
    if is_api_request():
        return jsonify(error="Database unavailable"), 503, {"Retry-After": "1"}
    response = ServiceUnavailable().get_response()
    response.headers["Retry-After"] = "1"
    return response


async def handle_internal_error(error: InternalServerError) -> ResponseReturnValue:
    """500 with a fixed message: the traceback goes to the log, never to the client."""
    if is_api_request():
        return jsonify(error="Internal server error"), 500
    return InternalServerError().get_response()


def init_app(app: Quart) -> None:
    """Install the request class and the error handlers on *app*."""
    app.request_class = JSONRequest
    app.register_error_handler(RequestSchemaValidationError, handle_validation_error)
    app.register_error_handler(InternalServerError, handle_internal_error)
    app.register_error_handler(DatabaseUnavailable, handle_database_unavailable)
    app.register_error_handler(HTTPException, handle_http_exception)
