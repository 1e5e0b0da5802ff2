"""Real servers on free ports, with the project's hypercorn.toml: quart_app.serve, as
production runs it, or the bare hypercorn whose bugs it works around."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest
import trustme

from quart_app.config import DEFAULTS
from quart_app.data.database import db
from quart_app.data.migrate import upgrade_database
from quart_app.data.models import UserType
from quart_app.security.credentials import create_user
from tests.helpers.apps import TEST_CONFIG, make_app
from tests.helpers.services import reset_schema
from tests.helpers.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent.parent
ADMIN_LIVE_PASSWORD = "live-admin-password"
STARTUP_SECONDS = 30

# For live tests whose subject is not the database: one server, on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

Server = Literal["quart_app.serve", "hypercorn"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def prepare_server_env(database_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    """Environment for live servers on an empty, migrated database with an admin.

    Migrated and seeded in this process, as ``init-db`` does (tests/test_cli.py runs the
    command itself): a subprocess would import the whole stack for it. The servers hash
    at the tests' cheap argon2 costs unless *extra* sets them.
    """
    env = dict(os.environ)
    env.update(
        QUART_SECRET_KEY="live-test-secret-" * 3,
        QUART_DATABASE_URL=database_url,
        QUART_AUTH_COOKIE_SECURE="false",
        QUART_SESSION_COOKIE_SECURE="false",
        ADMIN_PASSWORD=ADMIN_LIVE_PASSWORD,
    )
    if not any(name.startswith("QUART_ARGON2_") for name in extra):
        # A test that sets one cost wants production's for the others.
        env.update(
            QUART_ARGON2_TIME_COST=str(TEST_CONFIG["ARGON2_TIME_COST"]),
            QUART_ARGON2_MEMORY_COST=str(TEST_CONFIG["ARGON2_MEMORY_COST"]),
        )
    env.update(extra)
    await reset_schema(database_url, create=False)
    # The admin's hash at the server's costs, as init-db on the server's machine makes it.
    costs = {
        name: int(env.get(f"QUART_{name}", DEFAULTS[name]))
        for name in ("ARGON2_TIME_COST", "ARGON2_MEMORY_COST")
    }
    app = make_app(database_url, **costs)
    async with app.app_context():
        try:
            await upgrade_database()
            await create_user("admin", ADMIN_LIVE_PASSWORD, UserType.ADMIN)
        finally:
            await db.close()
    return env


@dataclass(frozen=True)
class ServerCertificate:
    """A certificate for 127.0.0.1 from a throwaway CA, and a client context trusting it."""

    certfile: Path
    keyfile: Path
    client_context: ssl.SSLContext


def issue_certificate(directory: Path) -> ServerCertificate:
    """A new CA, and a certificate it signed for 127.0.0.1, written to *directory*."""
    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    keyfile.write_bytes(leaf.private_key_pem.bytes())
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    return ServerCertificate(certfile, keyfile, client_context)


@dataclass
class LiveServer:
    """quart_app.serve's supervisor, its hypercorn workers serving quart_app.asgi:app."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # What a client checks the server's certificate against (https only).
    verify: ssl.SSLContext | bool = True


@contextmanager
def hypercorn_process(
    env: dict[str, str],
    workdir: Path,
    name: str,
    certificate: ServerCertificate | None = None,
    *,
    workers: int | None = 1,
    server: Server = "quart_app.serve",
) -> Iterator[LiveServer]:
    """Serve quart_app.asgi:app on a free port with *server*, the output in
    ``<workdir>/<name>.log``; stop the server after.

    With a *certificate* it serves TLS (HTTP/2 or HTTP/1.1, as the client offers). One
    worker unless the test is about workers (each one imports the whole app); ``None``
    for hypercorn.toml's own number, as production runs.
    """
    port = free_port()
    log_path = workdir / f"{name}.log"
    options = () if workers is None else ("--workers", str(workers))
    command = server_command(server, "quart_app.asgi:app", port, *options)
    verify: ssl.SSLContext | bool
    url, verify = f"http://127.0.0.1:{port}", True
    if certificate is not None:
        command += ["--certfile", str(certificate.certfile), "--keyfile", str(certificate.keyfile)]
        url, verify = f"https://127.0.0.1:{port}", certificate.client_context
    with running(command, env, workdir, log_path) as process:
        yield LiveServer(url, process, log_path, verify)


def server_command(server: Server, app: str, port: int, *options: str) -> list[str]:
    """The command line serving *app* on 127.0.0.1:*port* with the project's hypercorn.toml.

    *server* is ``quart_app.serve`` (production's supervisor) or ``hypercorn``: this
    environment's own hypercorn executable, bare, as upstream ships it.
    """
    program = {
        "quart_app.serve": [sys.executable, "-m", "quart_app.serve"],
        "hypercorn": [str(Path(sys.prefix) / "bin" / "hypercorn")],
    }[server]
    config = ("-c", str(ROOT / "hypercorn.toml"), "--bind", f"127.0.0.1:{port}")
    return [*program, app, *config, *options]


@contextmanager
def running(
    command: list[str], env: Mapping[str, str], workdir: Path, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server, its output in *log_path*; stop it and every process it started after."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: killing the supervisor alone would orphan the
            # workers, and with them their sockets and database connections.
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a server's whole process group, then SIGKILL whatever is left."""
    group = process.pid  # start_new_session made the server its group's leader
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)  # workers that outlived their supervisor
    process.wait(timeout=10)


@contextmanager
def production_server(workdir: Path) -> Iterator[LiveServer]:
    """quart_app.serve on a new, migrated SQLite database in *workdir*, once it answers.

    For a module's tests whose subject is the HTTP layer, not the database.
    """
    url = f"sqlite+aiosqlite:///{workdir / 'app.sqlite3'}"
    env = asyncio.run(prepare_server_env(url, workdir))
    with hypercorn_process(env, workdir, "hypercorn", workers=None) as server:
        asyncio.run(wait_until_serving(server))
        yield server


async def wait_until_listening(port: int) -> None:
    """Return once something accepts connections on 127.0.0.1:*port* (30 s at most)."""

    async def accepts() -> bool:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        return True

    await eventually(
        accepts, within=STARTUP_SECONDS, every=0.1, ignoring=(OSError,), what="hypercorn listening"
    )


async def wait_until_serving(server: LiveServer) -> None:
    """Return once /healthz answers; fail with the server's log if it exits first."""
    async with httpx.AsyncClient(base_url=server.url, verify=server.verify) as client:

        async def healthy() -> bool:
            if server.process.poll() is not None:
                output = server.log_path.read_text()
                pytest.fail(f"hypercorn exited with {server.process.returncode}:\n{output}")
            return (await client.get("/healthz")).status_code == 200

        await eventually(
            healthy,
            within=STARTUP_SECONDS,
            every=0.1,
            ignoring=(httpx.TransportError,),
            what=f"/healthz of {server.url}",
        )


async def token_for(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    """Bearer headers for *username*, signed in over real HTTP."""
    issued = await client.post("/api/tokens", json={"username": username, "password": password})
    assert issued.status_code == 201, issued.text
    return {"Authorization": f"Bearer {issued.json()['token']}"}


async def create_live_user(base_url: str, username: str, password: str) -> int:
    """Create a plain user on the live server at *base_url*, as its admin; return the id."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        headers = await token_for(client, "admin", ADMIN_LIVE_PASSWORD)
        created = await client.post(
            "/api/admin/users", json={"username": username, "password": password}, headers=headers
        )
    assert created.status_code == 201, created.text
    user_id: int = created.json()["id"]
    return user_id
