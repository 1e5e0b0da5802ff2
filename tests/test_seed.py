"""The two literal seed routes and the seed's json.dumps idiom."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from quart import Quart

from tests.helpers.apps import Client


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


async def test_returning_a_wsgi_app_is_not_a_response_in_quart(app: Quart) -> None:
    """Flask's rule 4 (call the return value as a WSGI app) has no Quart counterpart."""

    def legacy_wsgi_app(environ: dict[str, object], start_response: object) -> list[bytes]:
        return [b"never reached"]

    async def returns_wsgi_app() -> Callable[..., list[bytes]]:
        return legacy_wsgi_app

    # Registered without the decorator: its types rightly reject this return value.
    app.add_url_rule("/wsgi", view_func=returns_wsgi_app)

    # Quart raises "TypeError: The response value type (function) is not valid" while
    # building the response; the client sees a 500, and the WSGI app is never called.
    response = await app.test_client().get("/wsgi")
    assert response.status_code == 500
    assert "never reached" not in await response.get_data(as_text=True)
