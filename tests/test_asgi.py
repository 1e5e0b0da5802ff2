"""quart_app.asgi:app served by real hypercorn with the project's hypercorn.toml."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.live import ADMIN_LIVE_PASSWORD as ADMIN_PASSWORD
from tests.helpers.live import token_for
from tests.helpers.waiting import eventually


@pytest.mark.live
async def test_admin_signs_in_through_the_form_over_real_http(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        status = await client.get("/api/status")
        assert status.status_code == 200
        assert status.json() == {"success": True}

        to_login = await client.get("/admin")
        assert to_login.status_code == 302
        assert to_login.headers["location"] == "/login?next=/admin"

        form = await client.get(to_login.headers["location"])
        assert 'name="username"' in form.text
        token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
        signed_in = await client.post(
            "/login?next=/admin",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
        )
        assert signed_in.status_code == 302
        assert signed_in.headers["location"] == "/admin"
        dashboard = await client.get("/admin")
        assert dashboard.status_code == 200
        assert "<td>admin</td>" in dashboard.text

        # A cookie request with no origin evidence is refused; one from this origin passes.
        refused = await client.post("/api/things", json={"title": "no origin"})
        assert refused.status_code == 403
        created = await client.post(
            "/api/things", json={"title": "over the wire"}, headers={"Origin": base_url}
        )
        assert created.status_code == 201
        assert re.fullmatch(r"/api/things/\d+", created.headers["location"])


@pytest.mark.live
async def test_bearer_token_client_over_real_http(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        issued = await client.post(
            "/api/tokens", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert issued.status_code == 201
        headers = {"Authorization": f"Bearer {issued.json()['token']}"}
        assert (await client.get("/api/admin/users", headers=headers)).status_code == 200
        assert (await client.delete("/api/tokens/current", headers=headers)).status_code == 204
        refused = await client.get("/api/admin/users", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="quart_app"'


@pytest.mark.live
async def test_every_error_status_over_real_http(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        admin = await token_for(client, "admin", ADMIN_PASSWORD)
        created = await client.post(
            "/api/admin/users",
            json={"username": "plain", "password": "plain-password"},
            headers=admin,
        )
        assert created.status_code == 201
        user = await token_for(client, "plain", "plain-password")
        json_type = {"Content-Type": "application/json"}
        answers = {
            400: await client.post("/api/things", content=b"{", headers={**user, **json_type}),
            401: await client.get("/api/me"),
            403: await client.get("/api/admin/users", headers=user),
            404: await client.get("/api/no/such/route", headers=user),
            405: await client.delete("/api/status"),
            409: await client.post(
                "/api/admin/users",
                json={"username": "PLAIN", "password": "plain-password"},
                headers=admin,
            ),
            413: await client.post("/api/things", json={"title": "x" * 100_000}, headers=user),
            415: await client.post(
                "/api/things", content=b"title=x", headers={**user, "Content-Type": "text/plain"}
            ),
            422: await client.post("/api/things", json={"title": ""}, headers=user),
        }
        # 10 a minute per username; on a slow machine the limit may have let one more
        # attempt through meanwhile, so go on until it refuses.

        async def refused_attempt() -> httpx.Response | None:
            answer = await client.post(
                "/api/login", json={"username": "victim", "password": "guess"}
            )
            return answer if answer.status_code != 401 else None

        answers[429] = await eventually(
            refused_attempt, within=60, every=0, what="a sign-in attempt not refused as 401"
        )
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        assert response.headers["content-type"] == "application/json", status
        assert set(response.json()) >= {"error"}, status
    assert answers[401].headers["www-authenticate"] == 'Bearer realm="quart_app"'
    assert set(answers[405].headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    # Whole seconds until the username limit lets one more attempt through (period/count).
    assert re.fullmatch("[1-6]", answers[429].headers["retry-after"])


def access_log_lines(tmp_path: Path, request_ids: set[str]) -> dict[str, dict[str, str]]:
    """The access log's logfmt lines for *request_ids*, parsed into fields."""
    found: dict[str, dict[str, str]] = {}
    for line in (tmp_path / "hypercorn.log").read_text().splitlines():
        fields = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
        if fields.get("request_id") in request_ids:
            found[fields["request_id"]] = fields
    return found


@pytest.mark.live
async def test_keep_alive_reuses_one_connection_and_the_log_names_each_request(
    base_url: str, tmp_path: Path
) -> None:
    ids = {f"keepalive-{n}" for n in range(5)}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base_url, limits=limits) as client:
        for request_id in sorted(ids):
            response = await client.get("/api/status", headers={"X-Request-ID": request_id})
            assert response.headers["x-request-id"] == request_id

    async def logged() -> dict[str, dict[str, str]] | None:
        lines = await asyncio.to_thread(access_log_lines, tmp_path, ids)
        return lines if len(lines) == len(ids) else None

    # The log is written as requests finish.
    lines = await eventually(logged, what="an access log line for each request")
    assert set(lines) == ids
    assert {fields["status"] for fields in lines.values()} == {"200"}
    assert len({fields["client"] for fields in lines.values()}) == 1  # one client port


@pytest.mark.live
async def test_a_client_that_never_finishes_its_headers_is_cut_off(base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing
    await writer.drain()
    try:
        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await client.get("/api/status")).status_code == 200
        # keep_alive_timeout (5 s) closes it; 30 s is only how long the test waits.
        assert await asyncio.wait_for(reader.read(), timeout=30) == b""
    finally:
        writer.close()


@pytest.mark.live
@pytest.mark.parametrize(
    ("status", "request_kwargs"),
    [
        # Refused before the body is read: no credentials, CSRF, wrong content type.
        (401, {"url": "/api/things", "json": {"title": "x"}}),
        (
            403,
            {
                "url": "/api/things",
                "json": {"title": "x"},
                "headers": {"Cookie": "quart_app_auth=x"},
            },
        ),
        (
            415,
            {
                "url": "/api/things",
                "content": b"title=x",
                "headers": {
                    "Content-Type": "text/plain",
                    "Cookie": "quart_app_auth=x",
                    "Sec-Fetch-Site": "same-origin",
                },
            },
        ),
    ],
)
async def test_an_early_answer_leaves_the_connection_usable(
    base_url: str, status: int, request_kwargs: dict[str, Any]
) -> None:
    # One connection: each refusal is followed by a request on that same connection.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base_url, limits=limits) as client:
        for _ in range(60):
            refused = await client.post(**request_kwargs)
            assert refused.status_code == status
            assert (await client.get("/api/status")).status_code == 200


@pytest.mark.live
async def test_api_answers_are_json_or_have_no_body_over_real_http(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        headers = await token_for(client, "admin", ADMIN_PASSWORD)
        created = await client.post("/api/things", json={"title": "x"}, headers=headers)
        deleted = await client.delete(created.headers["location"], headers=headers)
        options = await client.options("/api/things", headers=headers)
        doubled = await client.get("/api//things", headers=headers)
    # No body, so no Content-Type (the test client would add text/html on its own).
    assert deleted.status_code == 204
    assert "content-type" not in deleted.headers
    assert options.status_code == 204
    assert "content-type" not in options.headers
    assert set(options.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    # Not merged into a redirect whose Location comes from the Host header.
    assert doubled.status_code == 404
    assert doubled.headers["content-type"] == "application/json"
    assert "location" not in doubled.headers
