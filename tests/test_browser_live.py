"""/ajax's live list in a real Chromium: api.js's subscribe() on the server's event stream.

Two browser contexts signed in as the same user stand for two tabs with separate
sessions, so one of them can be signed out while the other stays. Changes come from
the page's own buttons and from a bearer-token client; each tab must show them without
a reload, until its session ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.chromium import Tab, open_tab
from tests.helpers.live import SQLITE_ONLY, create_live_user, token_for

pytestmark = [pytest.mark.browser, pytest.mark.live]

# Bounds, not measures: a revoked stream ends within seconds, then the EventSource waits
# its `retry:` (2 s) before it asks again and is refused.
LIVE_TIMEOUT_MS = 20_000
# Set on each page once it is open: still there at the end means the page never reloaded.
MARK_PAGE = "() => { window.loadedOnce = true; }"
PAGE_IS_THE_SAME = "() => window.loadedOnce === true"


async def open_ajax(browser: Browser, base_url: str, username: str, password: str) -> Tab:
    """A new context signed in through the form as *username*, on /ajax."""
    tab = await open_tab(browser, base_url)
    await tab.page.goto("/login?next=/ajax")
    await tab.sign_in(username, password)
    await tab.page.wait_for_url(f"{base_url}/ajax")
    await tab.page.evaluate(MARK_PAGE)
    return tab


async def expect_titles(page: Page, titles: list[str]) -> None:
    """Wait until the live list shows exactly *titles*, newest first."""
    await expect(page.locator("#things li .title")).to_have_text(titles, timeout=LIVE_TIMEOUT_MS)


async def expect_live_status(page: Page, text: str) -> None:
    """Wait until the live status line reads *text*."""
    await expect(page.locator("#live-status")).to_have_text(text, timeout=LIVE_TIMEOUT_MS)


async def sign_out_elsewhere(base_url: str, tab: Tab) -> None:
    """End *tab*'s session with its cookie, from outside the browser."""
    cookies = await tab.page.context.cookies()
    header = "; ".join(f"{cookie['name']}={cookie['value']}" for cookie in cookies)
    async with httpx.AsyncClient(base_url=base_url) as client:
        # A cookie request must show it comes from the site (CSRF defence).
        answer = await client.post("/api/logout", headers={"Cookie": header, "Origin": base_url})
    assert answer.status_code == 204, answer.text


async def test_two_tabs_follow_every_change_until_one_is_signed_out(
    browser: Browser, base_url: str
) -> None:
    await create_live_user(base_url, "erin", "erin-password")
    first = await open_ajax(browser, base_url, "erin", "erin-password")
    second = await open_ajax(browser, base_url, "erin", "erin-password")
    for tab in (first, second):
        await expect_live_status(tab.page, "live")
        await expect_titles(tab.page, [])

    # Created with tab 1's button: tab 2 shows it too.
    await first.page.fill("#thing-form input[name=title]", "Water the plants")
    await first.page.click('button[data-call="create"]')
    await expect(first.page.locator('tr[data-call="create"] .status')).to_have_text("201")
    for tab in (first, second):
        await expect_titles(tab.page, ["Water the plants"])

    async with httpx.AsyncClient(base_url=base_url) as client:
        bearer = await token_for(client, "erin", "erin-password")
        created = await client.post("/api/things", json={"title": "Call mum"}, headers=bearer)
        assert created.status_code == 201, created.text
        thing = f"/api/things/{created.json()['id']}"
        item = f'#things li[data-thing-id="{created.json()["id"]}"]'
        for tab in (first, second):
            await expect_titles(tab.page, ["Call mum", "Water the plants"])
            await expect(tab.page.locator(item)).to_have_attribute("data-done", "false")

        updated = await client.patch(
            thing, json={"title": "Call mum back", "done": True}, headers=bearer
        )
        assert updated.status_code == 200, updated.text
        for tab in (first, second):
            await expect_titles(tab.page, ["Call mum back", "Water the plants"])
            await expect(tab.page.locator(item)).to_have_attribute(
                "data-done", "true", timeout=LIVE_TIMEOUT_MS
            )

        deleted = await client.delete(thing, headers=bearer)
        assert deleted.status_code == 204, deleted.text
        for tab in (first, second):
            await expect_titles(tab.page, ["Water the plants"])

        # Tab 2's session ends elsewhere: its stream ends, the EventSource's reconnect
        # is refused, and the page says so instead of showing a stale list as live.
        await sign_out_elsewhere(base_url, second)
        await expect_live_status(second.page, "disconnected: 401")
        await expect(second.page.locator("#live-status")).to_have_attribute("data-state", "stopped")
        await expect(second.page.locator("#live-sign-in")).to_be_visible()

        late = await client.post("/api/things", json={"title": "Too late"}, headers=bearer)
        assert late.status_code == 201, late.text
    await expect_titles(first.page, ["Too late", "Water the plants"])
    await expect_live_status(first.page, "live")
    # Tab 1 has the event, so the server has sent it to every stream it still holds.
    await expect_titles(second.page, ["Water the plants"])

    for tab in (first, second):
        assert await tab.page.evaluate(PAGE_IS_THE_SAME)
    assert first.errors == []
    # Chromium reports the refused reconnect, then subscribe()'s probe that finds out why.
    assert second.errors == 2 * [
        "Failed to load resource: the server responded with a status of 401 ()"
    ]


@asynccontextmanager
async def held_stream(base_url: str, bearer: dict[str, str]) -> AsyncIterator[None]:
    """An open /api/things/events stream of the bearer's user, until the block ends."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream("GET", "/api/things/events", headers=bearer) as stream,
    ):
        assert stream.status_code == 200
        yield


@SQLITE_ONLY
@pytest.mark.server_env(QUART_EVENT_STREAMS_PER_USER="1")
async def test_a_refused_stream_is_retried_after_retry_after(
    browser: Browser, base_url: str
) -> None:
    await create_live_user(base_url, "fred", "fred-password")
    async with httpx.AsyncClient(base_url=base_url) as client:
        bearer = await token_for(client, "fred", "fred-password")
        created = await client.post("/api/things", json={"title": "Fix the bike"}, headers=bearer)
        assert created.status_code == 201, created.text

        async with held_stream(base_url, bearer):
            tab = await open_ajax(browser, base_url, "fred", "fred-password")
            # Past the cap: the page learns the status the EventSource was refused
            # with, still shows the list, and waits as Retry-After asks.
            await expect_live_status(tab.page, "disconnected: 429, retrying in 5 s")
            await expect_titles(tab.page, ["Fix the bike"])

        await expect_live_status(tab.page, "live")
        again = await client.post("/api/things", json={"title": "Oil the chain"}, headers=bearer)
        assert again.status_code == 201, again.text
    await expect_titles(tab.page, ["Oil the chain", "Fix the bike"])
    assert await tab.page.evaluate(PAGE_IS_THE_SAME)
    refused = "Failed to load resource: the server responded with a status of 429 ()"
    assert tab.errors
    assert [e for e in tab.errors if e != refused] == []


SUBSCRIBE_UNTIL_CLOSED = """async (path) => {
    const { subscribe } = await import("/static/js/api.js");
    return new Promise((resolve) => {
        subscribe(path, {
            onclosed: (status, body, retryIn) => resolve({ status, body, retryIn }),
        });
    });
}"""


@SQLITE_ONLY
async def test_subscribe_reports_a_refusal_it_will_not_retry(
    browser: Browser, base_url: str
) -> None:
    await create_live_user(base_url, "gina", "gina-password")
    tab = await open_ajax(browser, base_url, "gina", "gina-password")
    await expect_live_status(tab.page, "live")

    # Only admins may follow the users' stream: the EventSource is refused with a 403
    # that it never shows; subscribe() finds it out and stops.
    async with asyncio.timeout(LIVE_TIMEOUT_MS / 1000):
        closed = await tab.page.evaluate(SUBSCRIBE_UNTIL_CLOSED, "/api/admin/events")

    assert closed == {"status": 403, "body": {"error": "Admin access is required"}, "retryIn": None}
    await expect_live_status(tab.page, "live")
    forbidden = "Failed to load resource: the server responded with a status of 403 ()"
    assert tab.errors == [forbidden, forbidden]
