"""The README's client examples, run as written against a live server.

A block marked ``<!-- tested: NAME -->`` is run exactly as the README shows it, with
only the address ``http://127.0.0.1:8080`` replaced by the live server's: shell blocks
in bash, Python blocks in a fresh interpreter (warnings are errors), JavaScript blocks
in Chromium on a page of the app after signing in, with the library of their name
loaded. Each must print the lines listed here. The live-updates examples print a
stream's events: while one runs, the test makes the changes whose events it must print.

The configuration table is checked against ``quart_app.config.DEFAULTS``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from quart_app.config import DEFAULTS
from tests.chromium import LIBRARY_FILES, open_tab
from tests.helpers.live import ROOT, SQLITE_ONLY, create_live_user, token_for
from tests.helpers.sse import EventParser

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

# The live-updates examples, and the first line each prints: the stream is open, so the
# changes the test makes from then on must reach it. curl prints the stream as it comes
# (parsed here with the tests' EventParser); the Python examples print the status, then
# one line per event: its name and its data.
STREAMS: dict[str, str] = {
    "curl_events": "retry: 2000",
    "httpx_events": "200",
    "aiohttp_events": "200",
}


def readme_examples() -> dict[str, tuple[str, str]]:
    """Every marked block of the README: name -> (language, code)."""
    text = (ROOT / "README.md").read_text()
    return {m["name"]: (m["language"], m["code"]) for m in EXAMPLE.finditer(text)}


def test_every_marked_example_is_run() -> None:
    assert readme_examples().keys() == PRINTS.keys() | STREAMS.keys()


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
    assert_prints(await run_process(command_for(language, code), tmp_path), PRINTS[name])


def command_for(language: str, code: str) -> list[str]:
    """The command that runs a shell or Python block; Python's output unbuffered, as in
    a terminal, so that a stream's lines come out as they are printed."""
    return {
        "sh": ["bash", "-euo", "pipefail", "-c", code],
        "python": [sys.executable, "-u", "-W", "error", "-c", code],
    }[language]


ALICE_NEW_PASSWORD = "alice-new-password"


async def change_alices_things(base_url: str) -> list[tuple[str, Any]]:
    """Create, update and delete a thing of alice's, then change her password, which
    ends her other sign-ins; the events a stream of hers must show, as (name, data)."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        token = await token_for(client, "alice", "alice-password")
        created = await client.post("/api/things", json={"title": "Buy milk"}, headers=token)
        assert created.status_code == 201, created.text
        thing_id = created.json()["id"]
        updated = await client.patch(f"/api/things/{thing_id}", json={"done": True}, headers=token)
        assert updated.status_code == 200, updated.text
        deleted = await client.delete(f"/api/things/{thing_id}", headers=token)
        assert deleted.status_code == 204, deleted.text
        passwords = {"current_password": "alice-password", "new_password": ALICE_NEW_PASSWORD}
        changed = await client.post("/api/me/password", json=passwords, headers=token)
        assert changed.status_code == 204, changed.text
    return [
        ("thing.created", created.json()),
        ("thing.updated", updated.json()),
        ("thing.deleted", {"id": thing_id}),
        ("end", {"reason": "revoked"}),
    ]


def events_printed(name: str, output: str) -> list[tuple[str, Any]]:
    """The events a live-updates example printed, as (name, data)."""
    if name == "curl_events":
        parser = EventParser()
        events = parser.feed(output.encode())
        assert parser.retry == 2000
        # Every event but the last, the end, carries an id of its own, ascending.
        ids = [int(event.id) for event in events[:-1] if event.id is not None]
        assert len(ids) == len(events) - 1
        assert ids == sorted(set(ids)), ids
        return [(event.event, event.json) for event in events]
    opened, *lines = output.splitlines()
    assert opened == STREAMS[name]
    printed = [line.split(" ", 1) for line in lines]
    return [(event, json.loads(data)) for event, data in printed]


@pytest.mark.live
@SQLITE_ONLY
@pytest.mark.parametrize("name", list(STREAMS))
async def test_the_readme_live_updates_example_prints_each_change(
    base_url: str, tmp_path: Path, name: str
) -> None:
    language, code = await example_for(base_url, name)
    process = await asyncio.create_subprocess_exec(
        *command_for(language, code),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            opened = (await process.stdout.readline()).decode()
            if opened.rstrip("\n") != STREAMS[name]:
                _, stderr = await process.communicate()
                pytest.fail(f"the example printed {opened!r} first:\n{stderr.decode()}")
            expected = await change_alices_things(base_url)
            # The example ends by itself once the server ends the stream.
            rest, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert events_printed(name, opened + rest.decode()) == expected


# Settings the table leaves out on purpose: safe values no deployment needs to change
# (the cookies' HttpOnly, the session cookie's SameSite) and the API's date format.
NOT_IN_THE_TABLE = {
    "QUART_AUTH_COOKIE_HTTP_ONLY",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "QUART_SCHEMA_PYDANTIC_DUMP_OPTIONS",
}
# Defaults the table states otherwise than DEFAULTS does, and why.
FILLED_IN = {"DATABASE_URL"}  # None in DEFAULTS: create_app fills in a file under instance/


def configuration_table() -> dict[str, Any]:
    """The README's configuration table: each setting's config key -> its stated default.

    A row may name several variables (``A`` / ``B``) with a default each; ``none`` is
    ``None``; a default is read as JSON where it can be, as the app reads variables.
    """
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, Any] = {}
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        variables, default, _meaning = row.strip("|").split(" | ", 2)
        names = re.findall(r"`([A-Z0-9_]+)`", variables)
        if not all(name.startswith("QUART_") for name in names):
            continue  # ADMIN_PASSWORD: read by init-db, not the app's config
        values: list[str | None] = re.findall(r"`([^`]*)`", default)
        if default.strip().startswith("none"):
            values = [None] * len(names)
        assert len(values) == len(names), row
        for name, value in zip(names, values, strict=True):
            key = name if name.startswith("QUART_AUTH_") else name.removeprefix("QUART_")
            table[key] = value if value is None else json_or_text(value)
    return table


def json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def test_the_configuration_table_names_every_setting_with_its_default() -> None:
    table = configuration_table()
    assert table.keys() == DEFAULTS.keys() - NOT_IN_THE_TABLE
    stated = {key: value for key, value in table.items() if key not in FILLED_IN}
    assert stated == {key: DEFAULTS[key] for key in stated}


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
