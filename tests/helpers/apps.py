"""Apps served in-process, and test clients that sign in the way users and browsers do."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from quart import Quart, Response
from quart.typing import TestClientProtocol
from sqlalchemy import bindparam, insert
from werkzeug.datastructures import Headers

from quart_app import create_app
from quart_app.data.database import db
from quart_app.data.models import Thing, UserType
from quart_app.data.statements import Query, Row
from quart_app.security.credentials import create_user

AUTH_COOKIE = "quart_app_auth"

# A thing for *owner_id*, stored as the data layer's own callers store one: the model
# fills in the rest.
ADD_THING = Query(insert(Thing).values(owner_id=bindparam("owner_id"), title=bindparam("title")))

# Test modules import this alias: pytest would try to collect a name starting with "Test".
Client = TestClientProtocol

USER_PASSWORD = "user-password-1"
ADMIN_PASSWORD = "admin-password-1"

# Cheap argon2id so the suite stays fast; production costs are tested in test_passwords.
TEST_CONFIG: dict[str, Any] = {
    "TESTING": True,
    "SECRET_KEY": "a-test-secret-key-that-is-long-enough-to-pass",
    "QUART_AUTH_COOKIE_SECURE": False,
    "SESSION_COOKIE_SECURE": False,
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_COST": 1024,
    # Many apps share this process: frozen objects would keep cyclic garbage (and the
    # ResourceWarnings it raises when collected) from one test to the next.
    # tests/test_collector.py turns it on.
    "GC_FREEZE_INTERVAL": 0,
}


def make_app(database_url: str, **overrides: Any) -> Quart:
    """A testing app on *database_url*."""
    return create_app({**TEST_CONFIG, "DATABASE_URL": database_url, **overrides})


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


def form_token(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    match = _CSRF_FIELD.search(html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


async def submit_form(
    client: Client, page: str, fields: dict[str, str], action: str | None = None
) -> Response:
    """Load *page* as a browser would, then post its form with the CSRF token it carries."""
    html = await (await client.get(page)).get_data(as_text=True)
    response: Response = await client.post(
        action or page, form={**fields, "csrf_token": form_token(html)}
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


def auth_cookie(client: Client) -> str:
    """The auth cookie value held by *client*."""
    assert client.cookie_jar is not None
    return next(c.value for c in client.cookie_jar if c.name == AUTH_COOKIE and c.value)


async def bearer_headers(client: Client, account: Account) -> dict[str, str]:
    """``Authorization`` headers with a fresh token for *account*."""
    response = await client.post(
        "/api/tokens", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 201
    token = (await response.get_json())["token"]
    return {"Authorization": f"Bearer {token}"}
