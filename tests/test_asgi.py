"""quart_app.asgi:app served by real hypercorn with the project's hypercorn.toml."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import reset_schema

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "live-admin-password"
STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    asyncio.run(reset_schema(database_url, create=False))
    env = dict(os.environ)
    env.update(
        QUART_SECRET_KEY="live-test-secret-" * 3,
        QUART_DATABASE_URL=database_url,
        QUART_AUTH_COOKIE_SECURE="false",
        ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    init = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quart_app", "init-db"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert "Created 'admin'" in init.stdout
    return env


@pytest.fixture
def server(
    server_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = (tmp_path / "hypercorn.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercorn",
            "-c",
            str(ROOT / "hypercorn.toml"),
            "--bind",
            f"127.0.0.1:{port}",
            "quart_app.asgi:app",
        ],
        env=server_env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
async def base_url(server: tuple[str, subprocess.Popen[bytes]], tmp_path: Path) -> str:
    url, process = server
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(STARTUP_SECONDS * 10):
            if process.poll() is not None:
                output = (tmp_path / "hypercorn.log").read_text()
                pytest.fail(f"hypercorn exited with {process.returncode}:\n{output}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail(f"hypercorn did not answer within {STARTUP_SECONDS}s")
    return url


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
