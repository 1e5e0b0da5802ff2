"""OpenAPI descriptions of the error answers that many routes share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from quart_schema import document_response

from ..schemas import Error

F = TypeVar("F", bound=Callable[..., object])


def documents_errors(*statuses: int) -> Callable[[F], F]:
    """Add ``Error`` bodies for *statuses* to a route's OpenAPI entry."""

    def decorator(view: F) -> F:
        for status in statuses:
            view = document_response(Error, status)(view)
        return view

    return decorator
