"""Workaround: quart-schema builds a new pydantic ``TypeAdapter`` on every request.

quart-schema 0.25 converts with ``TypeAdapter(type(value))`` each dict or list a view
returns (and each headers dict of a ``(body, headers)`` tuple), and loads every
validated query string and body with ``TypeAdapter(model)``. Building an adapter costs
30 to 110 µs, more than a small view itself; the adapter for a given type never
changes, so here each is built once.

Remove this module when quart-schema caches its adapters:
``tests/test_quart_schema_fixes.py`` fails on the day it does.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import quart_schema.conversion
from pydantic import TypeAdapter


@cache
def shared_type_adapter(type_: Any) -> TypeAdapter[Any]:
    """One adapter per type, for the life of the process."""
    return TypeAdapter(type_)


def apply() -> None:
    """Make quart-schema's conversions reuse one adapter per type (idempotent)."""
    quart_schema.conversion.TypeAdapter = shared_type_adapter  # type: ignore[attr-defined,assignment]
