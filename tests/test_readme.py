"""The README's client examples, run as written against a live server.

A block marked ``<!-- tested: NAME -->`` is run exactly as the README shows it, with
only the address ``http://127.0.0.1:8080`` replaced by the live server's: shell blocks
in bash, Python blocks in a fresh interpreter (warnings are errors), JavaScript blocks
in Chromium on a page of the app after signing in, with the library of their name
loaded. Each must print the lines listed here.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.chromium import LIBRARY_FILES, open_tab
from tests.helpers.live import ROOT, SQLITE_ONLY, create_live_user

README_URL = "http://127.0.0.1:8080"
EXAMPLE = re.compile(
    r"<!-- tested: (?P<name>\w+) -->\n```(?P<language>\w+)\n(?P<code>.*?)```", re.S
)

# What each example prints: one full-match pattern per line. The JavaScript examples'
# requests that do not wait for each other may answer in any order, so their lines
# are compared as a set.
PRINTS: dict[str, list[str]] = {
    "curl": [
        r'\{"user": ?\{.*"username": ?"alice".*\}\}',
        "200",
        r'\{.*"title": ?"Buy milk".*\}',
        "201",
        "204",
    ],
    "aiohttp": ["200", "201 Buy milk", "204", "204"],
    "httpx": ["201 Buy milk", "404 Thing not found", "204"],
    "jquery": ["201 Buy milk", "204", "404 Thing not found"],
    "axios": ["201 Buy milk", "204", "404 Thing not found"],
}


def readme_examples() -> dict[str, tuple[str, str]]:
    """Every marked block of the README: name -> (language, code)."""
    text = (ROOT / "README.md").read_text()
    return {m["name"]: (m["language"], m["code"]) for m in EXAMPLE.finditer(text)}


def test_every_marked_example_is_run() -> None:
    assert readme_examples().keys() == PRINTS.keys()


async def run_process(command: list[str], cwd: Path) -> list[str]:
    """Run *command*; fail with its error output unless it exits 0; return its lines."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().splitlines()


async def run_in_browser(browser: Browser, base_url: str, name: str, code: str) -> list[str]:
    """Run *code* on /ajax, signed in, with the library *name* loaded; return its log lines."""
    tab = await open_tab(browser, base_url)
    await tab.page.goto("/login?next=/ajax")
    await tab.sign_in("alice", "alice-password")
    await tab.page.wait_for_url(f"{base_url}/ajax")
    await tab.load_library(name)
    await tab.run_script(f"readme-{name}.js", code)
    printed = await tab.log_lines(len(PRINTS[name]))
    # Chromium reports each non-2xx answer as a resource error; nothing else may fail.
    assert [e for e in tab.errors if not e.startswith("Failed to load resource")] == []
    return sorted(printed)


def assert_prints(printed: list[str], expected: list[str]) -> None:
    """Each printed line matches its pattern, and no line is missing or extra."""
    assert len(printed) == len(expected), printed
    for line, pattern in zip(printed, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


async def example_for(base_url: str, name: str) -> tuple[str, str]:
    """The README's block *name* aimed at *base_url*, with its user ``alice`` created there."""
    await create_live_user(base_url, "alice", "alice-password")
    language, code = readme_examples()[name]
    return language, code.replace(README_URL, base_url)


@pytest.mark.live
@SQLITE_ONLY
@pytest.mark.parametrize("name", ["curl", "aiohttp", "httpx"])
async def test_the_readme_client_example_runs_as_written(
    base_url: str, tmp_path: Path, name: str
) -> None:
    language, code = await example_for(base_url, name)
    command = {
        "sh": ["bash", "-euo", "pipefail", "-c", code],
        "python": [sys.executable, "-W", "error", "-c", code],
    }[language]
    assert_prints(await run_process(command, tmp_path), PRINTS[name])


@pytest.mark.live
@pytest.mark.browser
@SQLITE_ONLY
@pytest.mark.parametrize("name", list(LIBRARY_FILES))
async def test_the_readme_browser_example_runs_as_written(
    browser: Browser, base_url: str, name: str
) -> None:
    language, code = await example_for(base_url, name)
    assert language == "js"
    assert_prints(await run_in_browser(browser, base_url, name, code), sorted(PRINTS[name]))
