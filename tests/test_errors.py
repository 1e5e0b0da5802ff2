"""Every error under /api/ is JSON with an ``error`` message; HTML routes keep HTML pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from quart import Quart

from tests.helpers.apps import Account, Client, make_app, signed_in_client


@dataclass
class Case:
    method: str
    path: str
    status: int
    error: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


CASES = [
    Case(
        "POST",
        "/api/things",
        400,
        "Malformed JSON body: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
        {"data": "{oops", "headers": {"Content-Type": "application/json"}},
    ),
    Case(
        "GET",
        "/api/me",
        401,
        "Unauthorized",
        {"headers": {"Authorization": "Bearer forged"}},
        {"WWW-Authenticate": 'Bearer realm="quart_app"'},
    ),
    Case("GET", "/api/admin/users", 403, "Admin access is required"),
    Case("GET", "/api/no/such/route", 404, "Not Found"),
    Case("GET", "/api/things/999999", 404, "Thing not found"),
    Case("DELETE", "/api/status", 405, "Method Not Allowed", {}, {"Allow": "GET, HEAD, OPTIONS"}),
    Case(
        "POST",
        "/api/things",
        413,
        "Request Entity Too Large",
        {"json": {"title": "x" * (65 * 1024)}},
        # The unread rest of the body makes the connection unfit for another request.
        {"Connection": "close"},
    ),
    Case(
        "POST",
        "/api/things",
        415,
        "Send the body as JSON with Content-Type: application/json",
        {"data": "title=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    ),
    Case("POST", "/api/things", 422, "Invalid input", {"json": {"title": ""}}),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.status}-{c.method}-{c.path}" for c in CASES])
async def test_api_errors_are_json(user_client: Client, case: Case) -> None:
    response = await user_client.open(case.path, method=case.method, **case.kwargs)
    assert response.status_code == case.status
    assert response.mimetype == "application/json"
    body = await response.get_json()
    assert body["error"] == case.error
    for name, value in case.headers.items():
        # Compared as sets: Werkzeug builds Allow from a set, in no fixed order.
        assert set(response.headers[name].split(", ")) == set(value.split(", "))


async def test_conflict_is_json(admin_client: Client, user: Account) -> None:
    response = await admin_client.post(
        "/api/admin/users", json={"username": "ALICE", "password": "long-enough-pw"}
    )
    assert response.status_code == 409
    assert await response.get_json() == {"error": "That username is taken"}


async def test_validation_error_names_every_field(user_client: Client) -> None:
    response = await user_client.post(
        "/api/things", json={"title": "t" * 201, "done": "yes", "colour": "red"}
    )
    assert response.status_code == 422
    assert await response.get_json() == {
        "error": "Invalid input",
        "fields": {
            "title": "String should have at most 200 characters",
            "done": "Input should be a valid boolean",
            "colour": "Extra inputs are not permitted",
        },
    }


@pytest.mark.parametrize("body", ["null", "[]", '"text"', "42"])
async def test_json_that_is_not_an_object_is_422(user_client: Client, body: str) -> None:
    response = await user_client.post(
        "/api/things", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "body" in (await response.get_json())["fields"]


async def test_bad_input_stores_nothing(user_client: Client) -> None:
    for bad in ({"title": ""}, {"title": "ok", "extra": 1}, {"done": True}):
        assert (await user_client.post("/api/things", json=bad)).status_code == 422
    assert (await (await user_client.get("/api/things")).get_json())["total"] == 0


async def test_html_routes_keep_html_error_pages(client: Client) -> None:
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


@pytest.fixture
async def failing_app(database_url: str, user: Account) -> Quart:
    app = make_app(database_url, PROPAGATE_EXCEPTIONS=False)

    @app.get("/api/boom")
    async def api_boom() -> str:
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/boom")
    async def html_boom() -> str:
        raise RuntimeError("secret internals: password=hunter2")

    return app


async def test_500_under_api_is_json_without_internals(failing_app: Quart) -> None:
    async with failing_app.test_app():
        client = failing_app.test_client()
        api = await client.get("/api/boom")
        html = await client.get("/boom")
    assert api.status_code == 500
    assert await api.get_json() == {"error": "Internal server error"}
    assert html.status_code == 500
    assert html.mimetype == "text/html"
    for response in (api, html):
        text = await response.get_data(as_text=True)
        assert "hunter2" not in text
        assert "Traceback" not in text


async def test_a_bad_bearer_token_is_not_rescued_by_a_cookie(app: Quart, user: Account) -> None:
    client = await signed_in_client(app, user)
    assert (await client.get("/api/me")).status_code == 200
    response = await client.get("/api/me", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"title": "\xff\xfe"}', 400),  # not UTF-8
        (b'{"title": "\\ud800"}', 400),  # a lone surrogate: not text
        (b'{"title": "nul \\u0000 inside"}', 422),  # PostgreSQL cannot store NUL
        (b'{"title": "tab\\tinside"}', 422),
        (b'{"title": "caf\\u00e9 \\ud83d\\ude00"}', 201),  # accents and emoji are fine
    ],
)
async def test_text_that_cannot_be_stored_is_refused_before_the_database(
    user_client: Client, body: bytes, status: int
) -> None:
    response = await user_client.post(
        "/api/things", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.mimetype == "application/json"
    expected_total = 1 if status == 201 else 0
    assert (await (await user_client.get("/api/things")).get_json())["total"] == expected_total


async def test_an_unknown_method_on_a_page_is_405_not_a_csrf_error(client: Client) -> None:
    no_body: dict[str, Any] = {}
    for path, method in (("/healthz", "QUERY"), ("/", "PUT"), ("/login", "DELETE")):
        response = await client.open(path, method=method, **no_body)
        assert response.status_code == 405, (path, method)


@pytest.mark.parametrize("path", ["/api/things/2147483648", "/api/things/99999999999999999999"])
async def test_ids_beyond_the_column_range_are_404(user_client: Client, path: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"done": True}} if method == "PATCH" else {}
        response = await user_client.open(path, method=method, **kwargs)
        assert response.status_code == 404, method
        assert await response.get_json() == {"error": "Thing not found"}


DEEP_ARRAY = "[" * 2000 + "]" * 2000
DEEP_OBJECT = '{"a":' * 2000 + "1" + "}" * 2000


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/login"),
        ("POST", "/api/tokens"),
        ("POST", "/api/me/password"),
        ("POST", "/api/things"),
        ("PATCH", "/api/things/1"),
        ("POST", "/api/admin/users"),
        ("PATCH", "/api/admin/users/1"),
    ],
)
async def test_json_nested_too_deeply_is_a_400_on_every_json_route(
    admin_client: Client, method: str, path: str, body: str
) -> None:
    sent: dict[str, Any] = {"data": body, "headers": {"Content-Type": "application/json"}}
    response = await admin_client.open(path, method=method, **sent)
    assert response.status_code == 400
    assert (await response.get_json()) == {"error": "Malformed JSON body: nested too deeply"}
