"""What a view declares about its answers, read by the OpenAPI document (``web.openapi``).

Decorators that only mark a view: the credentials it needs, the error statuses its own
code answers, that it uses the database, that it answers 204. The layers that enforce
a rule (``security.access``) mark the views they guard with these, so the document
lists what the code does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel
from quart_schema import document_response, security_scheme

F = TypeVar("F", bound=Callable[..., object])

BEARER = "bearerAuth"
COOKIE = "cookieAuth"
_DECLARED_ERRORS = "_quart_app_declared_errors"
_USES_DATABASE = "_quart_app_uses_database"


class NoContent(BaseModel):
    """No Content"""


class EventStream(BaseModel):
    """A stream of Server-Sent Events (text/event-stream): each event has an id:, an
    event: naming its kind, and a data: line of JSON."""


def event_stream(view: F) -> F:
    """Document a ``text/event-stream`` answer, and the ``Last-Event-ID`` it resumes from."""
    return document_response(EventStream, 200)(view)


def needs_credentials(view: F) -> F:
    """Document that *view* needs a bearer token or the auth cookie (so 401 and 503).

    Views use ``access.signed_in`` or ``access.admin_required``, which enforce what this
    documents.
    """
    return security_scheme([{BEARER: []}, {COOKIE: []}])(view)


def errors(*statuses: int) -> Callable[[F], F]:
    """Document error *statuses* that *view*'s own code answers (``abort``).

    Only what ``error_statuses`` cannot tell from the route itself: a 409, an
    admins-only 403, a sign-in's 401.
    """

    def decorator(view: F) -> F:
        declared: frozenset[int] = getattr(view, _DECLARED_ERRORS, frozenset())
        setattr(view, _DECLARED_ERRORS, declared | frozenset(statuses))
        return view

    return decorator


def uses_database(view: F) -> F:
    """Document that *view* reads or writes the database even when it takes no credentials."""
    setattr(view, _USES_DATABASE, True)
    return view


def no_content(view: F) -> F:
    """Document a 204 answer with no body."""
    return document_response(NoContent, 204)(view)


def declared_errors(view: Callable[..., object]) -> frozenset[int]:
    """The error statuses *view* declared with ``errors``."""
    declared: frozenset[int] = getattr(view, _DECLARED_ERRORS, frozenset())
    return declared


def declares_database(view: Callable[..., object]) -> bool:
    """True when *view* was marked with ``uses_database``."""
    return bool(getattr(view, _USES_DATABASE, False))
