"""How the API describes itself at ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from quart_schema import OpenAPIProvider, document_response, security_scheme
from quart_schema.typing import Model
from werkzeug.routing import BaseConverter, IntegerConverter

from .db import MAX_ID
from .schemas import Error

F = TypeVar("F", bound=Callable[..., object])

BEARER = "bearerAuth"
COOKIE = "cookieAuth"
SECURITY_SCHEMES: dict[str, Any] = {
    BEARER: {"type": "http", "scheme": "bearer"},
    COOKIE: {"type": "apiKey", "in_": "cookie", "name": "quart_app_auth"},
}
API_DESCRIPTION = (
    'Every answer is JSON, errors included: {"error": "..."}. '
    "Authenticate with a token from POST /api/tokens (`Authorization: Bearer <token>`) or "
    "with the cookie POST /api/login sets. Cookie-authenticated POST, PATCH and DELETE "
    "requests must be same-origin (Sec-Fetch-Site, or Origin) and application/json."
)


class NoContent(BaseModel):
    """No content."""


def signed_in(view: F) -> F:
    """Document that *view* accepts a bearer token or the auth cookie."""
    return security_scheme([{BEARER: []}, {COOKIE: []}])(view)


def errors(*statuses: int) -> Callable[[F], F]:
    """Document ``Error`` bodies for *statuses*."""

    def decorator(view: F) -> F:
        for status in statuses:
            view = document_response(Error, status)(view)
        return view

    return decorator


def no_content(view: F) -> F:
    """Document a 204 answer with no body."""
    return document_response(NoContent, 204)(view)


class AppOpenAPIProvider(OpenAPIProvider):
    """quart-schema's generator, made exact about path ids, 204s and the cookie name."""

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        """Integer path parameters are row ids: give them the id column's range.

        (Bounds on the converter itself would turn an out-of-range id into a 405,
        because Werkzeug records the other methods' matches before the converter fails;
        ``db.get`` answers such ids with "not found" instead.)
        """
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, IntegerConverter):
            parameter["schema"].update(minimum=0, maximum=MAX_ID)
        return parameter

    def build_response_object(
        self, model: type[Model], headers_model: type[Model] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Put documented headers on the response object, where OpenAPI expects them.

        quart-schema nests them under ``content``, as if ``headers`` were a media type.
        """
        response, definitions = super().build_response_object(model, headers_model)
        headers = response["content"].pop("headers", None)
        if headers is not None:
            response["headers"] = {
                name: {**header, "required": True} for name, header in headers.items()
            }
        return response, definitions

    def schema(self) -> dict[str, Any]:
        """The OpenAPI document: required bodies, bodiless 204s, the configured cookie name."""
        document = super().schema()
        for path_item in document["paths"].values():
            for operation in path_item.values():
                if "requestBody" in operation:
                    operation["requestBody"]["required"] = True
                responses = operation["responses"]
                for status in list(responses):
                    if int(status) == 204:
                        responses[status] = {"description": "No Content"}
        schemes = document["components"]["securitySchemes"]
        schemes[COOKIE]["name"] = self._app.config["QUART_AUTH_COOKIE_NAME"]
        document["components"]["schemas"].pop("NoContent", None)
        return document
