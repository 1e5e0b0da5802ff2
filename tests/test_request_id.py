"""X-Request-ID on every response, and trusting a reverse proxy only when told to."""

from __future__ import annotations

import re

import pytest

from tests.helpers.apps import Account, Client, make_app
from tests.helpers.services import reset_schema


@pytest.mark.parametrize("path", ["/", "/api/status", "/api/no/such/route", "/static/js/api.js"])
async def test_every_response_gets_a_fresh_request_id(client: Client, path: str) -> None:
    first = (await client.get(path)).headers["X-Request-ID"]
    second = (await client.get(path)).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


async def test_a_well_formed_request_id_is_echoed(client: Client) -> None:
    response = await client.get("/api/status", headers={"X-Request-ID": "lb-7f3a:42"})
    assert response.headers["X-Request-ID"] == "lb-7f3a:42"


@pytest.mark.parametrize("sent", ["has space", "x" * 129, 'quote"', "semi;colon", "é"])
async def test_a_request_id_that_could_corrupt_a_log_line_is_replaced(
    client: Client, sent: str
) -> None:
    response = await client.get("/api/status", headers={"X-Request-ID": sent})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


async def fail_sign_ins(client: Client, forwarded_for: list[str]) -> None:
    """One failed sign-in per address in *forwarded_for*, each under another username."""
    for n, address in enumerate(forwarded_for):
        response = await client.post(
            "/api/login",
            json={"username": f"name{n}", "password": "x"},
            headers={"X-Forwarded-For": address},
        )
        assert response.status_code == 401


async def test_behind_a_trusted_proxy_the_forwarded_client_is_the_client(
    database_url: str, user: Account
) -> None:
    app = make_app(database_url, PROXY_TRUSTED_HOPS=1, QUART_AUTH_COOKIE_SECURE=True)
    async with app.test_app():
        client = app.test_client()
        await fail_sign_ins(client, ["203.0.113.5"] * 30)
        limited = await client.post(
            "/api/login",
            json={"username": "last", "password": "x"},
            headers={"X-Forwarded-For": "203.0.113.5"},
        )
        other = await client.post(
            "/api/login",
            json={"username": "last", "password": "x"},
            headers={"X-Forwarded-For": "203.0.113.6"},
        )
        # The proxy terminated TLS: the app sees https and sets a Secure cookie
        # (quart-auth would warn, and the test fail, if it thought the request was http).
        signed_in = await client.post(
            "/api/login",
            json={"username": user.username, "password": user.password},
            headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
        )
    assert (limited.status_code, other.status_code) == (429, 401)
    assert signed_in.status_code == 200
    assert "Secure" in signed_in.headers["Set-Cookie"]


@pytest.mark.parametrize(("hops", "status"), [(0, 429), (1, 401)])
async def test_x_forwarded_for_names_the_rate_limited_client_only_behind_a_trusted_proxy(
    database_url: str, hops: int, status: int
) -> None:
    # 30 failed sign-ins a minute per client address: each of these claims another one.
    await reset_schema(database_url)
    app = make_app(database_url, PROXY_TRUSTED_HOPS=hops)
    async with app.test_app():
        client = app.test_client()
        await fail_sign_ins(client, [f"203.0.113.{n}" for n in range(30)])
        next_one = await client.post(
            "/api/login",
            json={"username": "last", "password": "x"},
            headers={"X-Forwarded-For": "203.0.113.100"},
        )
    assert next_one.status_code == status


@pytest.mark.parametrize(
    ("hops", "origin", "status"),
    [
        (0, "http://localhost", 201),
        (0, "https://localhost", 403),
        (1, "http://localhost", 403),
        (1, "https://localhost", 201),
    ],
)
async def test_x_forwarded_proto_sets_the_origin_only_behind_a_trusted_proxy(
    database_url: str, user: Account, hops: int, origin: str, status: int
) -> None:
    # A cookie-authenticated write without Fetch metadata: its Origin must be the app's,
    # which is https only when a trusted proxy says the browser used https.
    app = make_app(database_url, PROXY_TRUSTED_HOPS=hops)
    async with app.test_app():
        client = app.test_client()
        signed_in = await client.post(
            "/api/login", json={"username": user.username, "password": user.password}
        )
        assert signed_in.status_code == 200
        response = await client.post(
            "/api/things",
            json={"title": "forwarded"},
            headers={
                "Origin": origin,
                "X-Forwarded-For": "203.0.113.5",
                "X-Forwarded-Proto": "https",
            },
        )
    assert response.status_code == status
