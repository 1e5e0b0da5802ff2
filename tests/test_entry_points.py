"""The public entry points, each run as a real process the way the README runs it.

``quart --app quart_app``, ``hypercorn quart_app.asgi:app`` and ``python -m
quart_app.serve``; ``create_app`` is what every other test builds its app with.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from quart_app.data.models import User, UserType
from tests.helpers.apps import make_app, stored
from tests.helpers.live import (
    ADMIN_LIVE_PASSWORD,
    Server,
    hypercorn_process,
    prepare_server_env,
    wait_until_serving,
)


async def test_quart_cli_init_db_migrates_and_creates_the_admin(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    env = {
        **os.environ,
        "QUART_SECRET_KEY": "entry-point-secret-" * 3,
        "QUART_DATABASE_URL": url,
        "ADMIN_PASSWORD": ADMIN_LIVE_PASSWORD,
    }
    quart = str(Path(sys.executable).with_name("quart"))
    process = await asyncio.create_subprocess_exec(
        *(quart, "--app", "quart_app", "init-db"),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert "Created 'admin' with the password from $ADMIN_PASSWORD." in stdout.decode()
    app = make_app(url)
    async with app.test_app():
        rows = await stored(app, select(User.username, User.user_type))
    assert [(row.username, row.user_type) for row in rows] == [("admin", UserType.ADMIN.value)]


@pytest.mark.live
@pytest.mark.parametrize("server", ["hypercorn", "quart_app.serve"])
async def test_each_server_command_serves_the_app(tmp_path: Path, server: Server) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'served.sqlite3'}"
    env = await prepare_server_env(url, tmp_path)
    with hypercorn_process(env, tmp_path, "server", server=server) as live:
        await wait_until_serving(live)
        async with httpx.AsyncClient(base_url=live.url) as client:
            token = await client.post(
                "/api/tokens", json={"username": "admin", "password": ADMIN_LIVE_PASSWORD}
            )
            status = await client.get("/api/status")
    assert token.status_code == 201, token.text
    assert status.status_code == 200
    assert status.json() == {"success": True}


def test_the_supervisor_imports_none_of_the_app() -> None:
    """``python -m quart_app.serve`` imports the package; only its workers load the app."""
    app_modules = ("quart_app.web", "quart_app.security", "quart_app.data", "quart_app.http")
    probe = (
        "import sys, quart_app.serve.supervisor; "
        f"print(sorted(m for m in sys.modules if m == 'quart' or m.startswith({app_modules!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
