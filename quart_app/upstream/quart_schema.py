"""quart-schema: its conversion of what views return, paid on every request, cut short.

quart-schema 0.25 wraps ``app.make_response`` to turn models a view returns into JSON.
On the way it inspects every return value, a ready ``Response`` included (about ten
type checks, as much as building the response itself), and converts each dict or list
(and each headers dict of a ``(body, headers)`` tuple) with a new
``TypeAdapter(type(value))``; it also loads every validated query string and body with a
new ``TypeAdapter(model)``. Building an adapter costs 30 to 110 µs, more than a small
view itself.

Here an adapter is built once per type, and a ready response (alone, or with a status
and plain headers) goes straight to Quart. Remove this module when quart-schema does
both itself: ``tests/test_quart_schema_fixes.py`` fails on the day it does. No
upstream report.

Internals relied on:

``quart_schema.conversion.TypeAdapter``
    The name ``model_dump`` and ``model_load`` look pydantic's ``TypeAdapter`` up by,
    in quart-schema's module, at each call; it is replaced by ``shared_type_adapter``.
``__wrapped__`` of the ``make_response`` quart-schema installs
    ``QuartSchema.init_app`` replaces ``app.make_response`` with a converting wrapper
    made with ``functools.wraps``; its ``__wrapped__`` is Quart's own, which a ready
    response is given to directly. ``tests/test_upstream.py`` checks both names.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import quart_schema.conversion
from pydantic import TypeAdapter
from quart import Quart
from quart.typing import ResponseReturnValue, ResponseTypes
from werkzeug.sansio.response import Response as AnyResponse


@cache
def shared_type_adapter(type_: Any) -> TypeAdapter[Any]:
    """One adapter per type, for the life of the process."""
    return TypeAdapter(type_)


def is_ready(result: ResponseReturnValue) -> bool:
    """True for a response, with a status and/or plain headers: nothing to convert.

    Plain headers are a dict of strings whose names have no ``_``, which quart-schema
    would turn into ``-``.
    """
    if not isinstance(result, tuple):
        return isinstance(result, AnyResponse)
    value, *rest = result
    if rest and isinstance(rest[0], int):
        rest.pop(0)
    if rest:
        headers = rest.pop()
        if rest or not isinstance(headers, dict):
            return False
        if not all(isinstance(v, str) and "_" not in k for k, v in headers.items()):
            return False
    return isinstance(value, AnyResponse)


def apply(app: Quart) -> None:
    """Put both workarounds in place for *app* (after ``QuartSchema.init_app``)."""
    quart_schema.conversion.TypeAdapter = shared_type_adapter  # type: ignore[attr-defined,assignment]
    converting = app.make_response  # quart-schema's wrapper around Quart's own
    plain = converting.__wrapped__  # type: ignore[attr-defined]

    async def make_response(result: ResponseReturnValue) -> ResponseTypes:
        if is_ready(result):
            return await plain(result)  # type: ignore[no-any-return]
        return await converting(result)

    app.make_response = make_response  # type: ignore[method-assign,assignment]
