"""The same requests, by the same people, to the Flask original and to quart_app.

Each case compares everything a client sees of the two answers: status, content type,
JSON body, redirect target, ``WWW-Authenticate`` and the message flashed for the next
page. Where the port differs on purpose, the case names the difference and what each
app answers, so the test fails when either app changes (docs/porting.md lists them).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from quart import Quart, Response
from werkzeug.wrappers import Response as WerkzeugResponse

from quart_app.data.models import UserType
from tests.helpers.apps import (
    ADMIN_PASSWORD,
    USER_PASSWORD,
    Client,
    add_user,
    browser_client,
    submit_form,
)
from tests.parity.seed_flask_app import UserTable, create_seed_app

ADMIN_401 = 'Bearer realm="quart_app"'
FLASHED = "Admin access required"


@dataclass(frozen=True)
class Answer:
    """What a client sees of one answer."""

    status: int
    content_type: str | None
    json: Any
    location: str | None
    www_authenticate: str | None
    flashed: list[tuple[str, str]]


@dataclass(frozen=True)
class Differs:
    """A deliberate difference: what the Flask seed and the port each answer."""

    aspect: str
    flask: Any
    quart: Any


# (who, path, deliberate differences). Every aspect not named must be equal.
CASES: list[tuple[str, str, tuple[Differs, ...]]] = [
    ("anonymous", "/", ()),
    ("anonymous", "/api/status", ()),
    ("anonymous", "/do_thing", ()),
    ("anonymous", "/api/admin/users", (Differs("www_authenticate", None, ADMIN_401),)),
    (
        "anonymous",
        "/admin",
        (
            Differs("location", "/", "/login?next=/admin"),
            Differs("flashed", [("message", FLASHED)], [("error", FLASHED)]),
        ),
    ),
    ("user", "/", ()),
    ("user", "/api/status", ()),
    ("user", "/do_thing", ()),
    ("user", "/api/admin/users", (Differs("status", 401, 403),)),
    ("user", "/admin", (Differs("flashed", [("message", FLASHED)], [("error", FLASHED)]),)),
    ("admin", "/", ()),
    ("admin", "/api/status", ()),
    ("admin", "/do_thing", ()),
    ("admin", "/api/admin/users", ()),
    ("admin", "/admin", ()),
]

PEOPLE = {
    "user": ("alice", USER_PASSWORD, UserType.USER),
    "admin": ("root", ADMIN_PASSWORD, UserType.ADMIN),
}


@pytest.fixture
async def flask_app(app: Quart) -> AsyncIterator[Flask]:
    """The Flask seed app; the same people, in the same order, stored in it and in quart_app."""
    users = UserTable()
    for username, password, user_type in PEOPLE.values():
        await add_user(app, username, password, user_type)
        users.add(username, password, user_type.value)
    yield create_seed_app(users)
    users.close()


def flask_client_for(flask_app: Flask, who: str) -> FlaskClient:
    """A Flask test client signed in through the seed app's login view as *who*."""
    client = flask_app.test_client()
    if who != "anonymous":
        username, password, _ = PEOPLE[who]
        signed_in = client.post("/login", data={"username": username, "password": password})
        assert (signed_in.status_code, signed_in.location) == (302, "/")
    return client


async def quart_client_for(app: Quart, who: str) -> Client:
    """A browser-like Quart test client signed in through the port's login form as *who*."""
    client = browser_client(app)
    if who != "anonymous":
        username, password, _ = PEOPLE[who]
        signed_in = await submit_form(
            client, "/login", {"username": username, "password": password}
        )
        assert (signed_in.status_code, signed_in.location) == (302, "/")
        # Signing in flashes a welcome on the port; only what the request under test
        # flashes is compared.
        async with client.session_transaction() as session:
            session.pop("_flashes", None)
    return client


def comparable_json(body: Any) -> Any:
    """*body* with each timestamp checked and masked: each app stamps its own rows."""
    if isinstance(body, list):
        return [comparable_json(item) for item in body]
    if isinstance(body, dict):
        masked = {}
        for key, value in body.items():
            if key in {"created_at", "updated_at"}:
                assert datetime.fromisoformat(value).utcoffset() is not None, value
                value = "<timestamp>"
            masked[key] = comparable_json(value)
        return masked
    return body


def answer(response: WerkzeugResponse | Response, body: Any, flashed: list[Any]) -> Answer:
    """What a client sees of *response*, whose JSON *body* (if any) was read already."""
    return Answer(
        status=response.status_code,
        content_type=response.content_type,
        json=comparable_json(body) if response.is_json else None,
        location=response.headers.get("Location"),
        www_authenticate=response.headers.get("WWW-Authenticate"),
        flashed=[tuple(message) for message in flashed],
    )


def flask_answer(client: FlaskClient, path: str) -> Answer:
    response = client.get(path)
    with client.session_transaction() as session:
        flashed = session.get("_flashes", [])
    return answer(response, response.get_json(silent=True), flashed)


async def quart_answer(client: Client, path: str) -> Answer:
    response: Response = await client.get(path)
    async with client.session_transaction() as session:
        flashed = session.get("_flashes", [])
    return answer(response, await response.get_json(silent=True), flashed)


@pytest.mark.parametrize(
    ("who", "path", "differences"), CASES, ids=[f"{who} {path}" for who, path, _ in CASES]
)
async def test_quart_port_answers_like_the_flask_seed(
    app: Quart, flask_app: Flask, who: str, path: str, differences: tuple[Differs, ...]
) -> None:
    flask = flask_answer(flask_client_for(flask_app, who), path)
    quart = await quart_answer(await quart_client_for(app, who), path)

    differing = {difference.aspect: difference for difference in differences}
    aspects = [field.name for field in fields(Answer)]
    assert differing.keys() <= set(aspects)
    for aspect in aspects:
        flask_value, quart_value = getattr(flask, aspect), getattr(quart, aspect)
        if aspect in differing:
            expected = differing[aspect]
            assert (flask_value, quart_value) == (expected.flask, expected.quart), aspect
        else:
            assert quart_value == flask_value, aspect


async def test_the_seeds_misspelt_header_ports_as_is(app: Quart, flask_app: Flask) -> None:
    """``ContentType`` is an extra header in both: the body stays text/html."""

    # Not a route of the app: registered here to show the seed's typo ports unchanged.
    @app.get("/misspelt")
    async def misspelt() -> tuple[str, int, dict[str, str]]:
        return json.dumps({"success": True}), 200, {"ContentType": "application/json"}

    flask_response = flask_app.test_client().get("/misspelt")
    quart_response = await app.test_client().get("/misspelt")

    assert quart_response.status_code == flask_response.status_code == 200
    assert quart_response.content_type == flask_response.content_type
    assert quart_response.content_type == "text/html; charset=utf-8"
    assert quart_response.headers["ContentType"] == flask_response.headers["ContentType"]
    assert await quart_response.get_data(as_text=True) == flask_response.get_data(as_text=True)
