"""Shared fixtures: an app per database backend, clients signed in as a user and an admin."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from hypothesis import settings
from quart import Quart, Response
from quart.typing import TestClientProtocol
from redis import asyncio as aioredis
from sqlalchemy import text
from werkzeug.datastructures import Headers

from quart_app import create_app
from quart_app.accounts import create_user
from quart_app.db import Base, Query, Row, build_engine, db
from quart_app.models import UserType

# Chromium and the page helpers of the browser tests.
pytest_plugins = ["tests.chromium"]

# Test modules import this alias: pytest would try to collect a name starting with "Test".
Client = TestClientProtocol

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI") == "true"

# CI runs the same Hypothesis examples every time; timing deadlines mean little on 2 cores.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if IN_CI else "dev")

USER_PASSWORD = "user-password-1"
ADMIN_PASSWORD = "admin-password-1"

# Cheap argon2id so the suite stays fast; production costs are tested in test_passwords.
TEST_CONFIG: dict[str, Any] = {
    "TESTING": True,
    "SECRET_KEY": "a-test-secret-key-that-is-long-enough-to-pass",
    "AUTH_COOKIE_SECURE": False,
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_COST": 1024,
}


def _postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def skip_or_fail(reason: str, *, required: bool = IN_CI) -> None:
    """Skip for want of a service, except where it is *required* (CI=true): then fail."""
    if required:
        pytest.fail(f"{reason} (required here: this must run)")
    pytest.skip(reason)


async def reset_schema(url: str, *, create: bool = True) -> None:
    """Drop every table at *url*, then (unless *create* is false) create them again."""
    engine = build_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            if create:
                await connection.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend; PostgreSQL skips (or fails in CI) when absent."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    if not _postgres_answers():
        skip_or_fail("PostgreSQL does not answer on 127.0.0.1:5432")
    return POSTGRES_URL


# For live tests whose subject is not the database: one server, on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def make_app(database_url: str, **overrides: Any) -> Quart:
    """A testing app on *database_url*."""
    return create_app({**TEST_CONFIG, "DATABASE_URL": database_url, **overrides})


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[Quart]:
    """A started app on an empty schema."""
    await reset_schema(database_url)
    application = make_app(database_url)
    async with application.test_app():
        yield application


@pytest.fixture
def client(app: Quart) -> Client:
    """An anonymous test client."""
    return app.test_client()


@dataclass
class Account:
    """A stored user and the password that signs them in."""

    id: int
    username: str
    password: str


async def add_user(app: Quart, username: str, password: str, user_type: UserType) -> Account:
    """Store a user directly, as the CLI would."""
    async with app.app_context():
        user = await create_user(username, password, user_type)
        return Account(user.id, user.username, password)


async def stored(app: Quart, statement: Any, **params: Any) -> list[Row]:
    """Run a SQLAlchemy Core *statement* on *app*'s database: what is really stored."""
    async with app.app_context():
        return await db.fetch(Query(statement), **params)


async def create_thing(client: Client, title: str) -> int:
    """Create a thing through the API; its id."""
    response = await client.post("/api/things", json={"title": title})
    assert response.status_code == 201
    thing_id: int = (await response.get_json())["id"]
    return thing_id


@pytest.fixture
async def user(app: Quart) -> Account:
    """A plain user."""
    return await add_user(app, "alice", USER_PASSWORD, UserType.USER)


@pytest.fixture
async def admin(app: Quart) -> Account:
    """An admin."""
    return await add_user(app, "root", ADMIN_PASSWORD, UserType.ADMIN)


class SameOriginJSONMixin:
    """Sends what a browser running static/js/api.js sends on unsafe requests.

    Fetch metadata marks the request same-origin, and a body-less request still
    declares JSON, as api.js does. Explicit headers win, so CSRF tests can override.
    """

    async def open(self, path: str, *, method: str = "GET", **kwargs: Any) -> Response:
        if method.upper() not in {"GET", "HEAD", "OPTIONS"}:
            headers = Headers(kwargs.pop("headers", None))
            headers.setdefault("Sec-Fetch-Site", "same-origin")
            if not {"json", "data", "form"} & kwargs.keys():
                headers.setdefault("Content-Type", "application/json")
            kwargs["headers"] = headers
        response: Response = await super().open(path, method=method, **kwargs)  # type: ignore[misc]
        return response


def browser_client(app: Quart) -> Client:
    """An anonymous client that behaves like the app's own JavaScript."""
    client_class = type("BrowserClient", (SameOriginJSONMixin, app.test_client_class), {})
    client: Client = client_class(app, use_cookies=True)
    return client


_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def submit_form(
    client: Client, page: str, fields: dict[str, str], action: str | None = None
) -> Response:
    """Load *page* as a browser would, then post its form with the CSRF token it carries."""
    html = await (await client.get(page)).get_data(as_text=True)
    match = _CSRF_FIELD.search(html)
    assert match is not None, f"no CSRF token on {page}"
    response: Response = await client.post(
        action or page, form={**fields, "csrf_token": match.group(1)}
    )
    return response


async def signed_in_client(app: Quart, account: Account) -> Client:
    """A browser-like test client holding the auth cookie of *account*."""
    test_client = browser_client(app)
    response = await test_client.post(
        "/api/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    return test_client


@pytest.fixture
async def user_client(app: Quart, user: Account) -> Client:
    """A client signed in as the plain user."""
    return await signed_in_client(app, user)


@pytest.fixture
async def admin_client(app: Quart, admin: Account) -> Client:
    """A client signed in as the admin."""
    return await signed_in_client(app, admin)


async def bearer_headers(client: Client, account: Account) -> dict[str, str]:
    """``Authorization`` headers with a fresh token for *account*."""
    response = await client.post(
        "/api/tokens", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 201
    token = (await response.get_json())["token"]
    return {"Authorization": f"Bearer {token}"}


# --- A real server: quart_app.serve with the project's hypercorn.toml ----------------

ROOT = Path(__file__).resolve().parent.parent
ADMIN_LIVE_PASSWORD = "live-admin-password"
STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def prepare_server_env(database_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    """Environment for live servers on an empty, migrated database with an admin."""
    await reset_schema(database_url, create=False)
    env = dict(os.environ)
    env.update(
        QUART_SECRET_KEY="live-test-secret-" * 3,
        QUART_DATABASE_URL=database_url,
        QUART_AUTH_COOKIE_SECURE="false",
        ADMIN_PASSWORD=ADMIN_LIVE_PASSWORD,
        **extra,
    )
    init = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "quart", "--app", "quart_app", "init-db"),
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(init.communicate(), timeout=60)
    assert init.returncode == 0, stderr.decode()
    assert "Created 'admin'" in stdout.decode()
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
    env: dict[str, str], workdir: Path, name: str, certificate: ServerCertificate | None = None
) -> Iterator[LiveServer]:
    """Serve on a free port, the output in ``<workdir>/<name>.log``; stop the server after.

    With a *certificate* it serves TLS (HTTP/2 or HTTP/1.1, as the client offers).
    """
    port = free_port()
    log_path = workdir / f"{name}.log"
    command = [
        *(sys.executable, "-m", "quart_app.serve", "-c", str(ROOT / "hypercorn.toml")),
        *("--bind", f"127.0.0.1:{port}"),
    ]
    verify: ssl.SSLContext | bool
    url, verify = f"http://127.0.0.1:{port}", True
    if certificate is not None:
        command += ["--certfile", str(certificate.certfile), "--keyfile", str(certificate.keyfile)]
        url, verify = f"https://127.0.0.1:{port}", certificate.client_context
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
            yield LiveServer(url, process, log_path, verify)
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


async def wait_until_serving(server: LiveServer) -> None:
    """Return once /healthz answers; fail with the server's log if it never does."""
    async with httpx.AsyncClient(base_url=server.url, verify=server.verify) as client:
        for _ in range(STARTUP_SECONDS * 10):
            if server.process.poll() is not None:
                output = server.log_path.read_text()
                pytest.fail(f"hypercorn exited with {server.process.returncode}:\n{output}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    pytest.fail(f"hypercorn did not answer within {STARTUP_SECONDS}s")


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


@pytest.fixture
async def server_env(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> dict[str, str]:
    """The live server's environment; ``@pytest.mark.server_env(NAME="value")`` adds to it."""
    marker = request.node.get_closest_marker("server_env")
    return await prepare_server_env(database_url, tmp_path, **(marker.kwargs if marker else {}))


@pytest.fixture
def server(server_env: dict[str, str], tmp_path: Path) -> Iterator[LiveServer]:
    """One live server (its log is ``tmp_path / "hypercorn.log"``)."""
    with hypercorn_process(server_env, tmp_path, "hypercorn") as live:
        yield live


@pytest.fixture
async def base_url(server: LiveServer) -> str:
    """The URL of the live server, once it serves."""
    await wait_until_serving(server)
    return server.url


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """An emptied Redis database for the test; skips (fails in CI) without Redis."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        skip_or_fail("Redis does not answer on 127.0.0.1:6379")
    redis = aioredis.from_url(REDIS_URL)
    await redis.flushdb()
    yield REDIS_URL
    await redis.flushdb()
    await redis.aclose()


# --- A TCP relay in front of a server, to make it vanish and return --------------------


class TcpRelay:
    """Forwards 127.0.0.1:<port> to a target; ``stop()`` drops it, ``start()`` brings it back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, server_w}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()
                self._writers.discard(writer)

        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))


@pytest.fixture
def postgres_url() -> str:
    """The PostgreSQL test database, for tests that only make sense there."""
    if not _postgres_answers():
        skip_or_fail("PostgreSQL does not answer on 127.0.0.1:5432")
    return POSTGRES_URL
