"""How the API describes itself at ``/openapi.json``.

Every error status an operation can answer is derived in one place,
``error_statuses``, from what its route is; a view declares only what its own code
adds (``errors``). Shared schemas are components referenced with ``$ref``: each
request and response model, and one response per error status, all with the same
``Error`` body, so a generated client parses every answer the document lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quart import Quart
from quart_rate_limiter import QUART_RATE_LIMITER_LIMITS_ATTRIBUTE
from quart_schema import OpenAPIProvider, QuartSchema
from quart_schema.openapi import QUART_SCHEMA_SECURITY_ATTRIBUTE
from quart_schema.typing import Model
from quart_schema.validation import (
    QUART_SCHEMA_QUERYSTRING_ATTRIBUTE,
    QUART_SCHEMA_REQUEST_ATTRIBUTE,
    DataSource,
)
from werkzeug.routing import BaseConverter, IntegerConverter, Rule

from quart_app.data.base import MAX_ID
from quart_app.http.api_errors import API_PREFIX, WWW_AUTHENTICATE
from quart_app.http.declared import (
    BEARER,
    COOKIE,
    EventStream,
    NoContent,
    declared_errors,
    declares_database,
)
from quart_app.security.csrf import SAFE_METHODS
from quart_app.upstream import quart_schema as upstream_quart_schema
from quart_app.web.schemas import Error

API_DESCRIPTION = (
    'Every answer is JSON, errors included: {"error": "..."}. '
    "Authenticate with a token from POST /api/tokens (`Authorization: Bearer <token>`) or "
    "with the cookie POST /api/login sets. Cookie-authenticated POST, PATCH and DELETE "
    "requests must be same-origin (Sec-Fetch-Site, or Origin) and their bodies "
    "application/json."
)

_RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}


@dataclass(frozen=True)
class ErrorResponse:
    """How the document names and describes the answers with one error status."""

    name: str
    description: str
    headers: dict[str, Any] | None = None


ERROR_RESPONSES = {
    400: ErrorResponse("BadRequest", "Malformed JSON, or a request this route cannot serve."),
    401: ErrorResponse(
        "Unauthorized",
        "No valid credentials: missing, wrong, expired or revoked.",
        {
            "WWW-Authenticate": {
                "description": f"Always `{WWW_AUTHENTICATE}`.",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    ),
    403: ErrorResponse(
        "Forbidden",
        "Refused: a cross-site or unverified cookie request, or not allowed for this user.",
    ),
    404: ErrorResponse("NotFound", "No such item, or not one of yours."),
    409: ErrorResponse("Conflict", "The change conflicts with what is stored."),
    413: ErrorResponse("ContentTooLarge", "The body is over the size limit."),
    415: ErrorResponse("UnsupportedMediaType", "The body is not `application/json`."),
    422: ErrorResponse(
        "UnprocessableContent", "Well-formed but invalid input; `fields` names each problem."
    ),
    429: ErrorResponse(
        "TooManyRequests", "Too many sign-in attempts.", {"Retry-After": _RETRY_AFTER}
    ),
    503: ErrorResponse(
        "ServiceUnavailable",
        "The database or the rate-limit store did not answer in time.",
        {"Retry-After": _RETRY_AFTER},
    ),
}


def error_statuses(rule: Rule, method: str, view: Callable[..., object]) -> set[int]:
    """Every error status *method* on *rule* can answer, from what the route is."""
    statuses = set(declared_errors(view))
    if getattr(view, QUART_SCHEMA_SECURITY_ATTRIBUTE, None):
        # Credentials are checked against the session table.
        statuses |= {401, 503}
    if declares_database(view):
        statuses.add(503)
    if hasattr(view, QUART_RATE_LIMITER_LIMITS_ATTRIBUTE):
        # The limiter's store may be out of reach (rate_limits.py).
        statuses |= {429, 503}
    if rule.rule.startswith(API_PREFIX) and method.upper() not in SAFE_METHODS:
        # The CSRF rules (csrf.py): cross-site or unverified cookie requests, non-JSON bodies.
        statuses |= {403, 415}
    if getattr(view, QUART_SCHEMA_REQUEST_ATTRIBUTE, None):
        statuses |= {400, 413, 415, 422}
    if getattr(view, QUART_SCHEMA_QUERYSTRING_ATTRIBUTE, None):
        statuses.add(422)
    if rule.arguments:
        # Path ids name rows that may not exist.
        statuses.add(404)
    return statuses


# How a client resumes a stream: the id of the last event it saw.
_RESUME = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": "The id of the last event seen: the stream replays every later one.",
        "schema": {"type": "string"},
    },
    {
        "name": "last_event_id",
        "in": "query",
        "required": False,
        "description": "As Last-Event-ID, for a first connection that cannot set headers.",
        "schema": {"type": "string"},
    },
]


class AppOpenAPIProvider(OpenAPIProvider):
    """quart-schema's generator with shared components, derived errors and exact details."""

    def __init__(self, app: Quart, extension: QuartSchema) -> None:
        super().__init__(app, extension)
        self._components: dict[str, Any] = {}
        # The app's own dict of views (quart-schema keeps the app as a private _app).
        self._app_views = app.view_functions

    def schema(self) -> dict[str, Any]:
        """The OpenAPI document, with one shared response per error status."""
        self._components = {}
        document = super().schema()
        components = document["components"]
        error_body, definitions = self.build_response_object(Error, None)
        components["schemas"].update(definitions)
        components["responses"] = {
            response.name: {
                "description": response.description,
                "content": error_body["content"],
                **({"headers": response.headers} if response.headers else {}),
            }
            for response in ERROR_RESPONSES.values()
        }
        return document

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        """quart-schema's path items, plus every error status each operation can answer."""
        paths, components = super().build_paths(rule)
        view = self._app_views[rule.endpoint]
        for path_item in paths.values():
            for method, operation in path_item.items():
                # quart-schema shares one responses dict among a rule's methods.
                responses = dict(operation["responses"])
                for status in error_statuses(rule, method, view):
                    ref = f"#/components/responses/{ERROR_RESPONSES[status].name}"
                    responses[status] = {"$ref": ref}
                operation["responses"] = dict(sorted(responses.items()))
                if 200 in responses and responses[200].get("content", {}).get("text/event-stream"):
                    operation["parameters"] = [*operation.get("parameters", []), *_RESUME]
        return paths, components

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

    def build_request_body(
        self, model: type[Model], source: DataSource
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A required body whose schema is a component."""
        body, definitions = super().build_request_body(model, source)
        for media_type in body["content"].values():
            media_type["schema"] = self._shared(model, media_type["schema"], definitions)
        return {**body, "required": True}, definitions

    def build_response_object(
        self, model: type[Model], headers_model: type[Model] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A response whose body schema is a component and whose headers are where
        OpenAPI expects them (quart-schema nests them under ``content``, as if
        ``headers`` were a media type); a 204 has neither body nor content type.
        """
        if model is NoContent:
            return {"description": NoContent.__doc__}, {}
        if model is EventStream:
            content = {"text/event-stream": {"schema": {"type": "string"}}}
            return {
                "description": " ".join(str(EventStream.__doc__).split()),
                "content": content,
            }, {}
        response, definitions = super().build_response_object(model, headers_model)
        headers = response["content"].pop("headers", None)
        if headers is not None:
            response["headers"] = {
                name: {**header, "required": True} for name, header in headers.items()
            }
        for media_type in response["content"].values():
            media_type["schema"] = self._shared(model, media_type["schema"], definitions)
        return response, definitions

    def _shared(
        self, model: type[Model], schema: dict[str, Any], definitions: dict[str, Any]
    ) -> dict[str, str]:
        """Make *model*'s *schema* a component in *definitions*; return a reference to it.

        A name must always stand for the same schema: quart-schema merges every
        operation's definitions into one dict, where a clash would pass unnoticed.
        """
        definitions[model.__name__] = schema
        for name, definition in definitions.items():
            if self._components.setdefault(name, definition) != definition:
                raise ValueError(f"two different schemas are both named {name}")
        return {"$ref": f"#/components/schemas/{model.__name__}"}


def init_app(app: Quart) -> None:
    """Give *app* its own quart-schema extension, describing *app*'s own auth cookie."""
    QuartSchema(
        app,
        openapi_path="/openapi.json",
        # The bundled UIs load scripts from CDNs; this app serves no third-party assets.
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        info={"title": "quart_app", "version": "0.1.0", "description": API_DESCRIPTION},
        security_schemes={
            BEARER: {"type": "http", "scheme": "bearer"},
            COOKIE: {
                "type": "apiKey",
                "in_": "cookie",
                "name": app.config["QUART_AUTH_COOKIE_NAME"],
            },
        },
        openapi_provider_class=AppOpenAPIProvider,
    )
    upstream_quart_schema.apply(app)
