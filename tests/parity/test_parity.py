"""The same requests to the Flask original and to quart_app give the same answers."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from quart import Quart

from tests.parity.seed_flask_app import create_seed_app


@pytest.fixture
def flask_client() -> FlaskClient:
    return create_seed_app().test_client()


# (path, what to compare). "json" compares the parsed body; "text" is for idioms whose
# body is not JSON; "status" alone where the port answers with a different page by design.
CASES = [
    ("/", "status+type"),
    ("/api/status", "json"),
    ("/do_thing", "json"),
    ("/readyz", "json"),
    ("/misspelt", "text"),
    ("/api/admin/users", "json"),
    ("/admin", "status+type"),
]


@pytest.mark.parametrize(("path", "compare"), CASES)
async def test_quart_port_answers_like_the_flask_seed(
    app: Quart, flask_client: FlaskClient, path: str, compare: str
) -> None:
    if path == "/misspelt":
        # Not a route of the app: registered here to show the seed's header typo ports as is.
        @app.get("/misspelt")
        async def misspelt() -> tuple[str, int, dict[str, str]]:
            return json.dumps({"success": True}), 200, {"ContentType": "application/json"}

    flask_response = flask_client.get(path)
    quart_response = await app.test_client().get(path)

    assert quart_response.status_code == flask_response.status_code
    assert quart_response.headers["Content-Type"] == flask_response.headers["Content-Type"]
    if compare == "json":
        assert await quart_response.get_json() == flask_response.get_json()
    if compare == "text":
        assert await quart_response.get_data(as_text=True) == flask_response.get_data(as_text=True)
        assert quart_response.headers["ContentType"] == flask_response.headers["ContentType"]


async def test_where_the_port_deliberately_differs(app: Quart, flask_client: FlaskClient) -> None:
    """The contract adds WWW-Authenticate to 401 and sends anonymous browsers to sign in."""
    flask_401 = flask_client.get("/api/admin/users")
    quart_401 = await app.test_client().get("/api/admin/users")
    assert "WWW-Authenticate" not in flask_401.headers
    assert quart_401.headers["WWW-Authenticate"] == 'Bearer realm="quart_app"'

    flask_302 = flask_client.get("/admin")
    quart_302 = await app.test_client().get("/admin")
    assert flask_302.headers["Location"] == "/"
    assert quart_302.headers["Location"] == "/login?next=/admin"
