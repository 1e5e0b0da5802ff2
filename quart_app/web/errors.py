"""JSON errors under ``/api/``, HTML errors elsewhere, and Flask's 415 for non-JSON bodies."""

from __future__ import annotations

import json
from contextlib import suppress
from typing import Any, NoReturn

from pydantic import ValidationError
from quart import Quart, Response, current_app, jsonify, redirect, request
from quart.typing import ResponseReturnValue
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from werkzeug.wrappers import Response as WerkzeugResponse

from quart_app.data.db import DatabaseUnavailable
from quart_app.security.safe_redirects import login_url_for_current_request
from quart_app.upstream.quart import CachedBlueprintsRequest

API_PREFIX = "/api/"
WWW_AUTHENTICATE = 'Bearer realm="quart_app"'
NOT_JSON = "Send the body as JSON with Content-Type: application/json"


def is_api_request() -> bool:
    """True when the request's path is under ``/api/``.

    Decided from the path, not ``request.url_rule``, so it also holds for unknown
    paths and 405s, where there is no rule.
    """
    return request.path.startswith(API_PREFIX) or request.path == API_PREFIX.rstrip("/")


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


def init_app(app: Quart) -> None:
    """Install the request class and the error handlers on *app*."""
    app.request_class = JSONRequest
    app.register_error_handler(RequestSchemaValidationError, handle_validation_error)
    app.register_error_handler(InternalServerError, handle_internal_error)
    app.register_error_handler(DatabaseUnavailable, handle_database_unavailable)
    app.register_error_handler(HTTPException, handle_http_exception)
