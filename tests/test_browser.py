"""The /ajax and /admin pages in a real Chromium, against real hypercorn.

Debian's chromium is driven by Playwright (``playwright install`` cannot download
browsers here). Where Chromium is missing these tests skip, except under CI=true or
REQUIRE_BROWSER=1, where that is a failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect
from sqlalchemy import update

from quart_app.db import build_engine, utcnow
from quart_app.models import AuthSession
from tests.conftest import ADMIN_LIVE_PASSWORD, IN_CI, skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = IN_CI or os.environ.get("REQUIRE_BROWSER") == "1"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "ajax.png"
# Flags for a root user in a sandbox without network: no sandboxing, and no background
# traffic that this machine's closed network would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.live]


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is not installed (apt-get install chromium)", required=REQUIRED)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@dataclass
class Tab:
    """A page plus every console error and uncaught exception it produced."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)

    async def sign_in(self, username: str, password: str) -> None:
        await self.page.fill("input[name=username]", username)
        await self.page.fill("input[name=password]", password)
        await self.page.click("form button[type=submit]")


async def open_tab(browser: Browser, base_url: str, locale: str = "en-US") -> Tab:
    context = await browser.new_context(base_url=base_url, locale=locale)
    tab = Tab(await context.new_page(), base_url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(message.text)

    def on_page_error(error: Error) -> None:
        tab.errors.append(str(error))

    tab.page.on("console", on_console)
    tab.page.on("pageerror", on_page_error)
    return tab


async def create_user(base_url: str, username: str, password: str) -> int:
    async with httpx.AsyncClient(base_url=base_url) as client:
        token = await client.post(
            "/api/tokens", json={"username": "admin", "password": ADMIN_LIVE_PASSWORD}
        )
        headers = {"Authorization": f"Bearer {token.json()['token']}"}
        created = await client.post(
            "/api/admin/users", json={"username": username, "password": password}, headers=headers
        )
        assert created.status_code == 201
        user_id: int = created.json()["id"]
        return user_id


async def expect_row(page: Page, call: str, status: int, ok: bool) -> dict[str, object] | None:
    """Wait for the row of *call* to show *status*; return the body it shows."""
    row = page.locator(f'tr[data-call="{call}"]')
    await expect(row.locator(".status")).to_have_text(str(status))
    await expect(row.locator(".ok")).to_have_text("true" if ok else "false")
    await expect(row).to_have_class("success" if ok else "failure")
    text = await row.locator(".body").inner_text()
    if text == "(no body)":
        return None
    body: dict[str, object] = json.loads(text)
    return body


async def test_every_ajax_call_shows_its_status_ok_flag_and_body(
    browser: Browser, base_url: str
) -> None:
    await create_user(base_url, "bob", "bob-password")
    tab = await open_tab(browser, base_url)
    page = tab.page
    await page.goto("/ajax")
    await page.wait_for_url("**/login?next=/ajax")
    await tab.sign_in("bob", "bob-password")
    await page.wait_for_url(f"{base_url}/ajax")

    await page.click('button[data-call="status"]')
    assert await expect_row(page, "status", 200, ok=True) == {"success": True}

    await page.fill("#thing-form input[name=title]", "Walk the dog")
    await page.click('button[data-call="create"]')
    created = await expect_row(page, "create", 201, ok=True)
    assert created is not None
    assert (created["title"], created["done"]) == ("Walk the dog", False)

    await page.click('button[data-call="list"]')
    listed = await expect_row(page, "list", 200, ok=True)
    assert listed is not None
    assert listed["total"] == 1

    await page.click('button[data-call="toggle"]')
    toggled = await expect_row(page, "toggle", 200, ok=True)
    assert toggled is not None
    assert (toggled["id"], toggled["done"]) == (created["id"], True)

    await page.click('button[data-call="delete"]')
    assert await expect_row(page, "delete", 204, ok=True) is None

    await page.click('button[data-call="admin"]')
    assert await expect_row(page, "admin", 403, ok=False) == {"error": "Admin access is required"}

    await page.click('button[data-call="invalid"]')
    invalid = await expect_row(page, "invalid", 422, ok=False)
    assert invalid is not None
    assert invalid["error"] == "Invalid input"
    assert "title" in invalid["fields"]  # type: ignore[operator]

    await page.click('button[data-call="missing"]')
    assert await expect_row(page, "missing", 404, ok=False) == {"error": "Not Found"}

    # Nothing was refused by the CSP or threw. Chromium logs each non-2xx fetch as a
    # resource error: the three failures above, and nothing else.
    assert tab.errors == [
        f"Failed to load resource: the server responded with a status of {status} ()"
        for status in (403, 422, 404)
    ]

    SCREENSHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)


async def test_an_expired_session_leads_to_sign_in_and_back(
    browser: Browser, base_url: str, database_url: str
) -> None:
    await create_user(base_url, "carol", "carol-password")
    tab = await open_tab(browser, base_url)
    page = tab.page
    await page.goto("/login?next=/ajax")
    await tab.sign_in("carol", "carol-password")
    await page.wait_for_url(f"{base_url}/ajax")

    engine = build_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        await engine.dispose()

    await page.click('button[data-call="list"]')
    await page.wait_for_url("**/login?next=%2Fajax")
    await tab.sign_in("carol", "carol-password")
    await page.wait_for_url(f"{base_url}/ajax")
    await page.click('button[data-call="list"]')
    await expect_row(page, "list", 200, ok=True)


async def test_admin_page_changes_users_through_the_api(browser: Browser, base_url: str) -> None:
    bob_id = await create_user(base_url, "bob", "bob-password")
    tab = await open_tab(browser, base_url)
    page = tab.page
    await page.goto("/login?next=/admin")
    await tab.sign_in("admin", ADMIN_LIVE_PASSWORD)
    await page.wait_for_url(f"{base_url}/admin")
    bob = page.locator(f'tr[data-user-id="{bob_id}"]')
    result = page.locator("#admin-result")

    await bob.locator('button[data-action="promote"]').click()
    await expect(result).to_have_text("200 bob: admin, active=true")
    await expect(result).to_have_class("result success")
    await expect(bob.locator(".user-type")).to_have_text("admin")

    await bob.locator('button[data-action="demote"]').click()
    await expect(bob.locator(".user-type")).to_have_text("user")

    await bob.locator('button[data-action="deactivate"]').click()
    await expect(bob.locator(".is-active")).to_have_text("no")
    await expect(result).to_have_text("200 bob: user, active=false")

    admin_row = page.locator('tr[data-user-id="1"]')
    await admin_row.locator('button[data-action="demote"]').click()
    await expect(result).to_have_text("409 This would leave no active admin")
    await expect(result).to_have_class("result failure")
    await expect(admin_row.locator(".user-type")).to_have_text("admin")

    # What the page showed is what is stored.
    async with httpx.AsyncClient(base_url=base_url) as client:
        refused = await client.post(
            "/api/login", json={"username": "bob", "password": "bob-password"}
        )
    assert refused.status_code == 401
    assert [e for e in tab.errors if "Failed to load resource" not in e] == []


async def test_the_csp_blocks_injected_inline_script(browser: Browser, base_url: str) -> None:
    tab = await open_tab(browser, base_url)
    page = tab.page
    await page.goto("/")
    ran = await page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true;";
            document.body.appendChild(script);
            return window.injected === true;
        }"""
    )
    assert ran is False
    assert any("Content Security Policy" in error for error in tab.errors)


async def test_pages_speak_german_to_a_german_browser(browser: Browser, base_url: str) -> None:
    tab = await open_tab(browser, base_url, locale="de-DE")
    await tab.page.goto("/login")
    await expect(tab.page.locator("h1")).to_have_text("Anmelden")
    await expect(tab.page.locator("html")).to_have_attribute("lang", "de")
