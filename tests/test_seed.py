"""The two literal seed routes and the seed's json.dumps idiom."""

from __future__ import annotations

import json

import pytest
from quart import Quart

from tests.conftest import Client


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/api/status", 200, {"success": True}),
        ("/do_thing", 201, {"message": "Done", "code": "SUCCESS"}),
    ],
)
async def test_seed_routes_answer_as_the_flask_original(
    client: Client, path: str, status: int, body: dict[str, object]
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert await response.get_json() == body


async def test_misspelt_contenttype_header_leaves_the_body_as_html(app: Quart) -> None:
    """The seed's ``{'ContentType': 'application/json'}`` is just an unknown header."""

    @app.get("/misspelt")
    async def misspelt() -> tuple[str, int, dict[str, str]]:
        return json.dumps({"success": True}), 200, {"ContentType": "application/json"}

    response = await app.test_client().get("/misspelt")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["ContentType"] == "application/json"
    # A client that trusts Content-Type (fetch's response.json() does not care, jQuery's
    # dataType guessing does) sees HTML, not JSON.
    assert not response.is_json


async def test_readyz_sends_json_dumps_with_a_real_content_type(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(await response.get_data(as_text=True)) == {"status": "ready"}
