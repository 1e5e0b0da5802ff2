"""The quart-schema workaround: needed while upstream builds an adapter per conversion."""

from __future__ import annotations

from typing import Any

import pytest
import quart_schema.conversion
from pydantic import TypeAdapter
from quart import Quart
from quart_schema.conversion import model_dump, model_load

from quart_app.quart_schema_fixes import shared_type_adapter
from quart_app.schemas import PageQuery


def test_quart_schema_still_builds_an_adapter_per_conversion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fails once quart-schema reuses its adapters: then delete quart_schema_fixes.py."""
    built: list[Any] = []

    def counting_type_adapter(type_: Any) -> TypeAdapter[Any]:
        built.append(type_)
        return TypeAdapter(type_)

    monkeypatch.setattr(quart_schema.conversion, "TypeAdapter", counting_type_adapter)
    for _ in range(2):
        model_dump({"total": 1})
        model_load({"limit": "5"}, PageQuery, ValueError)
    assert built == [dict, PageQuery, dict, PageQuery]


async def test_the_app_reuses_one_adapter_per_type(app: Quart) -> None:
    assert quart_schema.conversion.__dict__["TypeAdapter"] is shared_type_adapter
    model_dump({"total": 1})
    before = shared_type_adapter.cache_info()
    assert model_dump({"total": 2, "limit": 20}) == {"total": 2, "limit": 20}
    assert model_load({"limit": "5"}, PageQuery, ValueError) == PageQuery(limit=5, offset=0)
    model_load({"offset": "3"}, PageQuery, ValueError)
    after = shared_type_adapter.cache_info()
    assert after.misses - before.misses <= 1  # PageQuery, unless an earlier test built it
    assert after.hits - before.hits >= 2
