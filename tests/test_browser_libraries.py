"""jQuery 3 and axios, from the npm registry, calling the API from the app's own page.

Each library makes its calls the way its documentation shows them (a DELETE and a
logout without a body, so without a content type), in Chromium, on /ajax after a
sign-in through the HTML form. The tests record which callback fired with which
status, and check what the database holds afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser
from sqlalchemy import select

from quart_app.data.database import build_engine
from quart_app.data.models import AuthSession, Thing
from tests.chromium import Tab, inline_script_runs, open_tab
from tests.helpers.live import SQLITE_ONLY, create_live_user

pytestmark = [pytest.mark.browser, pytest.mark.live]


@dataclass(frozen=True)
class Library:
    """How one library makes each call, and how its callbacks report back.

    Each call is a JS expression with ``title`` and ``url`` in scope; ``callbacks``
    is a JS function that attaches the library's success and error callbacks to
    the request and resolves to ``{callback, status, body}``.
    """

    name: str
    version_prefix: str
    version: str
    create: str
    delete: str
    logout: str
    list: str
    callbacks: str


JQUERY = Library(
    name="jquery",
    version_prefix="3.",
    version="jQuery.fn.jquery",
    create="""$.ajax({
        type: "POST",
        url: "/api/things",
        contentType: "application/json",
        data: JSON.stringify({title}),
    })""",
    delete='$.ajax({type: "DELETE", url})',
    logout='$.post("/api/logout")',
    list='$.getJSON("/api/things")',
    callbacks="""(request) => new Promise((resolve) => request
        .done((body, textStatus, xhr) =>
            resolve({callback: "success", status: xhr.status, body: body ?? null}))
        .fail((xhr) =>
            resolve({callback: "error", status: xhr.status, body: xhr.responseJSON ?? null})))""",
)

AXIOS = Library(
    name="axios",
    version_prefix="1.",
    version="axios.VERSION",
    create='axios.post("/api/things", {title})',
    delete="axios.delete(url)",
    logout='axios.post("/api/logout")',
    list='axios.get("/api/things")',
    # axios hands an empty body over as "".
    callbacks="""(request) => request.then(
        (response) =>
            ({callback: "success", status: response.status, body: response.data || null}),
        (error) =>
            ({callback: "error", status: error.response.status, body: error.response.data}))""",
)

LIBRARIES = [pytest.param(JQUERY, id="jquery"), pytest.param(AXIOS, id="axios")]


@dataclass(frozen=True)
class Outcome:
    """Which callback a call ended in, with the status and parsed body it saw."""

    callback: str
    status: int
    body: Any


async def call(tab: Tab, library: Library, expression: str, **scope: str) -> Outcome:
    """Make the call *expression* in the page; return which of its callbacks fired."""
    result = await tab.page.evaluate(
        f"async ({{title, url}}) => ({library.callbacks})({expression})",
        {"title": scope.get("title"), "url": scope.get("url")},
    )
    return Outcome(**result)


async def fetch_all(database_url: str, statement: Any) -> list[tuple[Any, ...]]:
    """The rows *statement* selects from the live server's database."""
    engine = build_engine(database_url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(statement)]
    finally:
        await engine.dispose()


async def signed_in_tab(browser: Browser, base_url: str, library: Library) -> Tab:
    """/ajax, signed in through the HTML form as dora, with *library* loaded."""
    tab = await open_tab(browser, base_url)
    await tab.page.goto("/login?next=/ajax")
    await tab.sign_in("dora", "dora-password")
    await tab.page.wait_for_url(f"{base_url}/ajax")
    await tab.load_library(library.name)
    return tab


@SQLITE_ONLY
@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_library_loads_under_the_pages_csp(
    browser: Browser, base_url: str, library: Library
) -> None:
    tab = await open_tab(browser, base_url)
    response = await tab.page.goto("/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]

    await tab.load_library(library.name)

    version = await tab.page.evaluate(library.version)
    assert version.startswith(library.version_prefix)
    # Served from the page's origin, the library needed no exception to the policy,
    # and the policy still refuses what it refused before.
    assert await inline_script_runs(tab.page) is False
    assert len(tab.errors) == 1
    assert "Content Security Policy" in tab.errors[0]


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_library_creates_deletes_without_a_body_and_signs_out(
    browser: Browser, base_url: str, database_url: str, library: Library
) -> None:
    user_id = await create_live_user(base_url, "dora", "dora-password")
    tab = await signed_in_tab(browser, base_url, library)
    cookies = {cookie["name"]: cookie["value"] for cookie in await tab.page.context.cookies()}

    created = await call(tab, library, library.create, title="Buy milk")
    assert (created.callback, created.status) == ("success", 201)
    assert (created.body["title"], created.body["done"]) == ("Buy milk", False)
    things = select(Thing.id, Thing.title).where(Thing.owner_id == user_id)
    assert await fetch_all(database_url, things) == [(created.body["id"], "Buy milk")]

    invalid = await call(tab, library, library.create, title="")
    assert (invalid.callback, invalid.status) == ("error", 422)
    assert "title" in invalid.body["fields"]

    url = f"/api/things/{created.body['id']}"
    assert await call(tab, library, library.delete, url=url) == Outcome("success", 204, None)
    assert await fetch_all(database_url, things) == []
    missing = await call(tab, library, library.delete, url=url)
    assert missing == Outcome("error", 404, {"error": "Thing not found"})

    assert await call(tab, library, library.logout) == Outcome("success", 204, None)
    sessions = select(AuthSession.kind, AuthSession.revoked_at).where(
        AuthSession.user_id == user_id
    )
    [(kind, revoked_at)] = await fetch_all(database_url, sessions)
    assert (kind, revoked_at is not None) == ("cookie", True)
    signed_out = await call(tab, library, library.list)
    assert (signed_out.callback, signed_out.status) == ("error", 401)
    # The cookies the browser held before signing out open nothing any more.
    async with httpx.AsyncClient(base_url=base_url, cookies=cookies) as client:
        replayed = await client.get("/api/things")
    assert replayed.status_code == 401

    # The page's live stream ends with the session and its reconnect is refused too,
    # at a moment of its own: tests/test_browser_live.py checks those.
    assert tab.errors_but_from("/api/things/events") == [
        f"Failed to load resource: the server responded with a status of {status} ()"
        for status in (422, 404, 401)
    ]
