"""quart_app.asgi:app served by real hypercorn with the project's hypercorn.toml."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess

import httpx
import pytest

from tests.conftest import ADMIN_LIVE_PASSWORD as ADMIN_PASSWORD


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
async def test_sigterm_stops_the_server_cleanly(
    base_url: str, server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    _url, process = server
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0
