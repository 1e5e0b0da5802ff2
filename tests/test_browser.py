"""The /ajax and /admin pages in a real Chromium, against real hypercorn.

Chromium, its fixtures and the tab helpers are in tests/chromium.py.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import update

from quart_app.data.base import utcnow
from quart_app.data.database import build_engine
from quart_app.data.models import AuthSession
from tests.chromium import inline_script_runs, open_tab
from tests.helpers.live import ADMIN_LIVE_PASSWORD, create_live_user

# `make screenshot` names the file to write (docs/ajax.png); a plain test run writes none.
SCREENSHOT = os.environ.get("AJAX_SCREENSHOT")

pytestmark = [pytest.mark.browser, pytest.mark.live]


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
    await create_live_user(base_url, "bob", "bob-password")
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

    if SCREENSHOT:
        await page.screenshot(path=SCREENSHOT, full_page=True)


async def test_an_expired_session_leads_to_sign_in_and_back(
    browser: Browser, base_url: str, database_url: str
) -> None:
    await create_live_user(base_url, "carol", "carol-password")
    tab = await open_tab(browser, base_url)
    page = tab.page
    await page.goto("/login?next=/ajax")
    await tab.sign_in("carol", "carol-password")
    await page.wait_for_url(f"{base_url}/ajax")
    # The live list loads on its own once its stream is open; expired before that, its
    # 401 would send the page to sign in before the click below.
    await page.wait_for_selector("#things[data-loaded]", state="attached")

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
    bob_id = await create_live_user(base_url, "bob", "bob-password")
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
    assert await inline_script_runs(page) is False
    assert any("Content Security Policy" in error for error in tab.errors)


async def test_pages_speak_german_to_a_german_browser(browser: Browser, base_url: str) -> None:
    tab = await open_tab(browser, base_url, locale="de-DE")
    await tab.page.goto("/login")
    await expect(tab.page.locator("h1")).to_have_text("Anmelden")
    await expect(tab.page.locator("html")).to_have_attribute("lang", "de")
