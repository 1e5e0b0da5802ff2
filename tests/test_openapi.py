"""/openapi.json describes every /api/ route completely enough to use it alone."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel
from quart import Quart
from quart_schema import validate_request

from quart_app.web.openapi import AppOpenAPIProvider
from tests.helpers.apps import Client, make_app

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


# Every error status each operation can answer, read off the routes and errors.py
# by hand; tests/test_openapi_statuses.py provokes each one from a real request.
SIGNED_IN = {401, 503}
UNSAFE = {403, 415}
JSON_BODY = {400, 413, 415, 422}
SIGN_IN = UNSAFE | JSON_BODY | {401, 429, 503}
ERROR_STATUSES: dict[tuple[str, str], set[int]] = {
    ("get", "/api/status"): set(),
    ("post", "/api/login"): SIGN_IN,
    ("post", "/api/tokens"): SIGN_IN,
    ("post", "/api/logout"): UNSAFE | {503},
    ("delete", "/api/tokens/current"): SIGNED_IN | UNSAFE | {400},
    ("get", "/api/me"): SIGNED_IN,
    ("post", "/api/me/password"): SIGNED_IN | UNSAFE | JSON_BODY,
    ("get", "/api/things"): SIGNED_IN | {422},
    ("post", "/api/things"): SIGNED_IN | UNSAFE | JSON_BODY | {409},
    ("get", "/api/things/{thing_id}"): SIGNED_IN | {404},
    ("patch", "/api/things/{thing_id}"): SIGNED_IN | UNSAFE | JSON_BODY | {404},
    ("delete", "/api/things/{thing_id}"): SIGNED_IN | UNSAFE | {404},
    ("get", "/api/admin/users"): SIGNED_IN | {403, 422},
    # The live streams: past the per-user cap of open streams, 429.
    ("get", "/api/things/events"): SIGNED_IN | {429},
    ("get", "/api/admin/events"): SIGNED_IN | {403, 429},
    ("post", "/api/admin/users"): SIGNED_IN | UNSAFE | JSON_BODY | {409},
    ("get", "/api/admin/users/{user_id}"): SIGNED_IN | {403, 404},
    ("patch", "/api/admin/users/{user_id}"): SIGNED_IN | UNSAFE | JSON_BODY | {404, 409},
    ("delete", "/api/admin/users/{user_id}"): SIGNED_IN | UNSAFE | {404, 409},
    ("get", "/do_thing"): set(),
    ("get", "/healthz"): set(),
    ("get", "/readyz"): {503},
}
SUCCESS = {"200", "201", "204"}


def resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """*item*, or what its ``$ref`` points at."""
    if "$ref" not in item:
        return item
    node: Any = document
    for key in item["$ref"].removeprefix("#/").split("/"):
        node = node[key]
    resolved: dict[str, Any] = node
    return resolved


async def test_each_operation_documents_the_error_statuses_it_can_answer(
    document: dict[str, Any],
) -> None:
    answers = {
        key: {int(status) for status in operation["responses"] if status not in SUCCESS}
        for key, operation in documented(document).items()
    }
    assert answers == ERROR_STATUSES


STREAMS = {("get", "/api/things/events"), ("get", "/api/admin/events")}


async def test_the_streams_document_how_to_resume(document: dict[str, Any]) -> None:
    for key in STREAMS:
        operation = documented(document)[key]
        parameters = {(p["in"], p["name"]) for p in operation["parameters"]}
        assert parameters == {("header", "Last-Event-ID"), ("query", "last_event_id")}, key
        assert "Last-Event-ID" in operation["description"], key


async def test_every_answer_has_one_success_status_and_json_bodies(
    document: dict[str, Any],
) -> None:
    for key, operation in documented(document).items():
        assert len(SUCCESS & set(operation["responses"])) == 1, key
        if "requestBody" in operation:
            assert operation["requestBody"]["required"] is True, key
        for status, response in operation["responses"].items():
            response = resolve(document, response)
            if status == "204":
                assert set(response) == {"description"}, key
            elif key in STREAMS and status == "200":
                assert set(response["content"]) == {"text/event-stream"}, key
            else:
                assert set(response["content"]) == {"application/json"}, (key, status)


async def test_errors_are_shared_responses_with_the_error_body(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    for key, operation in documented(document).items():
        for status, response in operation["responses"].items():
            if status not in SUCCESS:
                assert response["$ref"].startswith("#/components/responses/"), (key, status)
    for name, response in responses.items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, name
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert set(error["properties"]) == {"error", "fields"}


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("Unauthorized", "WWW-Authenticate"),
        ("TooManyRequests", "Retry-After"),
        ("ServiceUnavailable", "Retry-After"),
    ],
)
async def test_error_responses_document_their_headers(
    document: dict[str, Any], name: str, header: str
) -> None:
    assert document["components"]["responses"][name]["headers"][header]["required"] is True


async def test_bodies_are_components_and_every_reference_resolves(
    document: dict[str, Any],
) -> None:
    for key, operation in documented(document).items():
        media_types = [
            media_type
            for response in operation["responses"].values()
            for media_type in resolve(document, response).get("content", {}).values()
        ]
        if "requestBody" in operation:
            media_types += operation["requestBody"]["content"].values()
        for media_type in media_types:
            if media_type["schema"] == {"type": "string"}:
                assert key in STREAMS  # text/event-stream: text, no JSON schema
                continue
            assert set(media_type["schema"]) == {"$ref"}, key

    def references(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [ref for value in node.values() for ref in references(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in references(value)]
        return []

    refs = set(references(document))
    assert "#/components/schemas/ThingOut" in refs
    for ref in refs:
        assert resolve(document, {"$ref": ref}), ref


async def test_created_resources_document_their_location(document: dict[str, Any]) -> None:
    for path in ("/api/things", "/api/admin/users"):
        created = document["paths"][path]["post"]["responses"]["201"]
        assert created["headers"]["location"]["required"] is True


async def test_ids_are_bounded_integers(document: dict[str, Any]) -> None:
    parameter = document["paths"]["/api/things/{thing_id}"]["get"]["parameters"][0]
    assert parameter["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}


async def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    # Picks the rules of the version the document declares; raises on the first error.
    assert document["openapi"].startswith("3.1.")
    validate(document)


@pytest.mark.parametrize("path", ["/api/things/{thing_id}", "/api/admin/users/{user_id}"])
async def test_patch_bodies_publish_optional_non_null_fields_and_at_least_one(
    document: dict[str, Any], path: str
) -> None:
    patch = document["paths"][path]["patch"]
    update = resolve(document, patch["requestBody"]["content"]["application/json"]["schema"])
    assert update["minProperties"] == 1
    assert update["additionalProperties"] is False
    # Absent means "leave it as it is", so no field is required; null is a 422, so no
    # field admits it, not even as a default.
    assert "required" not in update
    for name, field in update["properties"].items():
        assert "default" not in field, name
        assert "anyOf" not in field, name
        assert field["type"] in {"string", "boolean"}, name


class ThingOut(BaseModel):
    """Not schemas.ThingOut, but with the same name."""

    other: int


async def test_two_schemas_with_one_name_are_refused(database_url: str) -> None:
    app = make_app(database_url)

    @validate_request(ThingOut)
    async def clash(data: ThingOut) -> str:
        return ""

    app.add_url_rule("/api/clash", view_func=clash, methods=["POST"])
    provider = AppOpenAPIProvider(app, app.extensions["QUART_SCHEMA"])
    with pytest.raises(ValueError, match="two different schemas are both named ThingOut"):
        provider.schema()
