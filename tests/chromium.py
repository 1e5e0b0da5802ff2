"""Debian's Chromium under Playwright, for the browser tests (a pytest plugin of conftest).

``playwright install`` cannot download browsers here, so the tests drive
/usr/bin/chromium. Where it is missing they skip, except under CI=true or
REQUIRE_BROWSER=1, where that is a failure. Third-party libraries come from the npm
registry into tests/js/node_modules (``make test`` runs ``npm ci`` there) and reach a
page from its own origin, so the app's Content-Security-Policy applies to them as is.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, Route, async_playwright

from tests.helpers.live import ROOT
from tests.helpers.services import IN_CI, skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = IN_CI or os.environ.get("REQUIRE_BROWSER") == "1"
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

NODE_MODULES = ROOT / "tests" / "js" / "node_modules"
# The browser builds that put `jQuery`/`$` and `axios` on `window`.
LIBRARY_FILES = {
    "jquery": "jquery/dist/jquery.min.js",
    "axios": "axios/dist/axios.min.js",
}
# Where a page finds the scripts a test serves it: a path of the page's own origin.
TEST_SCRIPTS = "/__test__/"
_DEVTOOLS = re.compile(r"DevTools listening on (ws://\S+)")
# How long a test waits for a page's script to log what it should: a bound, not a measure.
LOG_WAIT_SECONDS = 30


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One headless Chromium for the session (each xdist worker's): its DevTools endpoint.

    Skips (fails where the browser is required) without it. Each test connects to it
    and works in contexts of its own (``browser``), so no cookie or storage crosses tests.
    """
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is not installed (apt-get install chromium)", required=REQUIRED)
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [
            str(CHROMIUM),
            "--headless=new",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            *CHROMIUM_ARGS,
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    # Keeps reading its output once the endpoint is known, so a full pipe never blocks it.
    drain = threading.Thread(target=process.stderr.read, daemon=True)
    try:
        endpoint = None
        for line in process.stderr:
            found = _DEVTOOLS.search(line)
            if found:
                endpoint = found.group(1)
                break
        assert endpoint is not None, f"Chromium exited with {process.wait(timeout=5)}"
        drain.start()
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if drain.is_alive():
            drain.join(timeout=10)  # the pipe ends with the browser
        process.stderr.close()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """The session's Chromium, connected for the test; the contexts it opens close after."""
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium)
        yield connected
        await connected.close()


@dataclass
class Tab:
    """A page plus every console error, uncaught exception and ``console.log`` line it produced."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)
    # Where each error came from: the resource that failed to load, or the script.
    error_sources: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    _console_changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_page_error)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)
            self.error_sources.append(message.location.get("url", ""))
        elif message.type == "log":
            self.logged.append(message.text)
            self._console_changed.set()

    def _on_page_error(self, error: Error) -> None:
        self.errors.append(str(error))
        self.error_sources.append("")

    def errors_but_from(self, path: str) -> list[str]:
        """The errors, but those of resources under *path* (say, a live stream's retries)."""
        return [
            error
            for error, source in zip(self.errors, self.error_sources, strict=True)
            if path not in source
        ]

    async def sign_in(self, username: str, password: str) -> None:
        """Submit the sign-in form the page shows."""
        await self.page.fill("input[name=username]", username)
        await self.page.fill("input[name=password]", password)
        await self.page.click("form button[type=submit]")

    async def run_script(self, name: str, source: str) -> None:
        """Run *source* as the page's own script would: fetched from its origin, under its CSP."""
        url = f"{self.base_url}{TEST_SCRIPTS}{name}"

        async def fulfil(route: Route) -> None:
            await route.fulfill(body=source, content_type="text/javascript; charset=utf-8")

        await self.page.route(url, fulfil)
        await self.page.add_script_tag(url=url)

    async def log_lines(self, count: int) -> list[str]:
        """The page's first *count* ``console.log`` lines, once it has logged them."""
        try:
            async with asyncio.timeout(LOG_WAIT_SECONDS):
                while len(self.logged) < count:
                    self._console_changed.clear()
                    await self._console_changed.wait()
        except TimeoutError:
            pytest.fail(f"logged {self.logged} in {LOG_WAIT_SECONDS}s, errors: {self.errors}")
        return self.logged[:count]

    async def load_library(self, name: str) -> None:
        """Load the npm-installed library *name* (a key of LIBRARY_FILES) into the page."""
        path = NODE_MODULES / LIBRARY_FILES[name]
        if not path.exists():
            reason = f"{path} is missing (make test runs npm ci in tests/js)"
            skip_or_fail(reason, required=REQUIRED)
        await self.run_script(f"{name}.js", path.read_text())


async def open_tab(browser: Browser, base_url: str, locale: str = "en-US") -> Tab:
    """A new browser context on *base_url*, recording errors and ``console.log`` lines."""
    context = await browser.new_context(base_url=base_url, locale=locale)
    return Tab(await context.new_page(), base_url)


async def inline_script_runs(page: Page) -> bool:
    """Whether a script injected into the page's markup runs (the CSP should refuse it)."""
    ran: bool = await page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true;";
            document.body.appendChild(script);
            return window.injected === true;
        }"""
    )
    return ran
