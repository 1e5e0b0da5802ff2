"""/openapi.json describes every /api/ route completely enough to use it alone."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart

from tests.conftest import Client

PUBLIC = {
    ("get", "/api/status"),
    ("post", "/api/login"),
    ("post", "/api/logout"),
    ("post", "/api/tokens"),
}


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = await response.get_json()
    return body


def api_operations(app: Quart) -> set[tuple[str, str]]:
    """(method, path) of every /api/ route the app serves."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule.replace("<int:", "{").replace(">", "}")
        for method in rule.methods or ():
            if method not in {"HEAD", "OPTIONS"}:
                operations.add((method.lower(), path))
    return operations


def documented(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


async def test_every_api_route_is_documented_and_no_page_is(
    app: Quart, document: dict[str, Any]
) -> None:
    operations = documented(document)
    api = {key for key in operations if key[1].startswith("/api/")}
    assert api == api_operations(app)
    assert {path for _, path in operations} - {path for _, path in api} == {
        "/do_thing",
        "/healthz",
        "/readyz",
    }


async def test_security_schemes_cover_bearer_and_cookie(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert schemes["cookieAuth"] == {"type": "apiKey", "in": "cookie", "name": "quart_app_auth"}
    for key, operation in documented(document).items():
        if not key[1].startswith("/api/"):
            continue
        if key in PUBLIC:
            assert "security" not in operation, key
        else:
            assert operation["security"] == [{"bearerAuth": []}, {"cookieAuth": []}], key


async def test_every_status_an_operation_can_answer_is_documented(
    document: dict[str, Any],
) -> None:
    for (method, path), operation in documented(document).items():
        if not path.startswith("/api/"):
            continue
        statuses = set(operation["responses"])
        assert statuses & {"200", "201", "204"}, (method, path)
        if (method, path) not in PUBLIC:
            assert "401" in statuses, (method, path)
        if path.startswith("/api/admin/"):
            assert "403" in statuses, (method, path)
        if method in {"post", "patch", "delete"}:
            assert {"403", "415"} <= statuses, (method, path)  # the CSRF rules
        if "requestBody" in operation:
            assert operation["requestBody"]["required"] is True
            assert {"400", "413", "415", "422"} <= statuses, (method, path)
        if path in {"/api/login", "/api/tokens"}:
            assert "429" in statuses
        for status, response in operation["responses"].items():
            if status == "204":
                assert "content" not in response
            else:
                assert "application/json" in response["content"], (method, path, status)


async def test_created_resources_document_their_location(document: dict[str, Any]) -> None:
    for path in ("/api/things", "/api/admin/users"):
        created = document["paths"][path]["post"]["responses"]["201"]
        assert created["headers"]["location"]["required"] is True


async def test_ids_are_bounded_integers(document: dict[str, Any]) -> None:
    parameter = document["paths"]["/api/things/{thing_id}"]["get"]["parameters"][0]
    assert parameter["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}


async def test_patch_bodies_publish_non_null_fields_and_at_least_one(
    document: dict[str, Any],
) -> None:
    patch = document["paths"]["/api/things/{thing_id}"]["patch"]
    thing_update = patch["requestBody"]["content"]["application/json"]["schema"]
    assert thing_update["minProperties"] == 1
    assert thing_update["additionalProperties"] is False
    assert thing_update["properties"]["done"]["type"] == "boolean"
    assert "anyOf" not in thing_update["properties"]["title"]
