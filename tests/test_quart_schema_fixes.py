"""The quart-schema workarounds: needed while upstream does this work on every request."""

from __future__ import annotations

from typing import Any

import pytest
import quart_schema.conversion
from pydantic import TypeAdapter
from quart import Quart, Response
from quart.typing import ResponseReturnValue
from quart_schema.conversion import convert_response_return_value, model_dump, model_load

from quart_app.upstream.quart_schema import is_ready, shared_type_adapter
from quart_app.web.schemas import PageQuery, StatusOut


def test_quart_schema_still_builds_an_adapter_per_conversion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fails once quart-schema reuses its adapters: then drop shared_type_adapter."""
    built: list[Any] = []

    def counting_type_adapter(type_: Any) -> TypeAdapter[Any]:
        built.append(type_)
        return TypeAdapter(type_)

    monkeypatch.setattr(quart_schema.conversion, "TypeAdapter", counting_type_adapter)
    for _ in range(2):
        model_dump({"total": 1})
        model_load({"limit": "5"}, PageQuery, ValueError)
    assert built == [dict, PageQuery, dict, PageQuery]


async def test_quart_schema_still_inspects_a_ready_response(
    app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails once quart-schema lets a ready response through: then drop is_ready."""
    inspected: list[Any] = []

    def counting_model_dump(raw: Any, **options: Any) -> Any:
        inspected.append(raw)
        return model_dump(raw, **options)

    monkeypatch.setattr(quart_schema.conversion, "model_dump", counting_model_dump)
    response = Response("{}", content_type="application/json")
    async with app.app_context():
        assert convert_response_return_value(response) is response
    assert inspected[0] is response


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


@pytest.mark.parametrize(
    ("result", "ready"),
    [
        (Response("x"), True),
        ((Response("x"), 201), True),
        ((Response("x"), {"X-Total-Count": "3"}), True),
        ((Response("x"), 201, {"X-Total-Count": "3"}), True),
        ((Response("x"), {"x_total_count": "3"}), False),
        ((Response("x"), {"X-Total-Count": 3}), False),
        ((Response("x"), 201, [("X-Total-Count", "3")]), False),
        ((Response("x"), 201, {"X-Total-Count": "3"}, "extra"), False),
        (({"success": True}, {"X-Total-Count": "3"}), False),
        ({"success": True}, False),
        (({"success": True}, 201), False),
        (StatusOut(success=True), False),
        ("text", False),
    ],
)
def test_only_a_ready_response_skips_quart_schema(result: ResponseReturnValue, ready: bool) -> None:
    assert is_ready(result) is ready


@pytest.mark.parametrize(
    ("result", "status", "body"),
    [
        (Response('{"success":true}', content_type="application/json"), 200, {"success": True}),
        ((Response('{"success":true}', content_type="application/json"), 201), 201, None),
        (({"success": True}, 202), 202, {"success": True}),
        ((StatusOut(success=True), 201), 201, {"success": True}),
        (
            (Response('{"success":true}', content_type="application/json"), 201, {"X-A": "1"}),
            201,
            None,
        ),
        (({"success": True}, 201, {"x_a": "1"}), 201, None),
    ],
)
async def test_the_app_answers_every_kind_of_result(
    app: Quart, result: ResponseReturnValue, status: int, body: dict[str, Any] | None
) -> None:
    async with app.app_context():
        response = await app.make_response(result)
    assert response.status_code == status
    assert await response.get_json() == (body or {"success": True})
    if isinstance(result, tuple) and isinstance(result[-1], dict):
        assert response.headers["X-A"] == "1"  # x_a made x-a by quart-schema
