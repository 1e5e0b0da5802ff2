"""Schemathesis, driven by /openapi.json alone, against real hypercorn.

Every check runs (server errors, status code, content type, headers and schema
conformance, negative data rejection, positive data acceptance, unsupported methods,
ignored auth, use after free, ...) with a fixed seed and a bounded number of examples
per operation, once as a plain user and once as an admin. Any failure fails the test.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from tests.helpers.live import ADMIN_LIVE_PASSWORD

ROOT = Path(__file__).resolve().parent.parent
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
SEED = 20261121
# The live streams (text/event-stream): left out, see the command below.
STREAMS = re.compile("/events$")

pytestmark = [
    pytest.mark.live,
    # This test says so: sign-in rate limits are off, since the fuzzer signs in far
    # more often than a person; tests/test_rate_limits.py covers the limits.
    pytest.mark.server_env(QUART_RATE_LIMIT_ENABLED="false"),
]


async def fuzz_account(base_url: str, admin: bool) -> tuple[str, str, int]:
    if admin:
        async with httpx.AsyncClient(base_url=base_url) as client:
            token = await client.post(
                "/api/tokens", json={"username": "admin", "password": ADMIN_LIVE_PASSWORD}
            )
            me = await client.get(
                "/api/me", headers={"Authorization": f"Bearer {token.json()['token']}"}
            )
        return "admin", ADMIN_LIVE_PASSWORD, me.json()["user"]["id"]
    async with httpx.AsyncClient(base_url=base_url) as client:
        token = await client.post(
            "/api/tokens", json={"username": "admin", "password": ADMIN_LIVE_PASSWORD}
        )
        created = await client.post(
            "/api/admin/users",
            json={"username": "fuzzer", "password": "fuzzer-password"},
            headers={"Authorization": f"Bearer {token.json()['token']}"},
        )
        assert created.status_code == 201
        return "fuzzer", "fuzzer-password", created.json()["id"]


@pytest.mark.parametrize("as_admin", [False, True], ids=["user", "admin"])
async def test_schemathesis_finds_nothing(base_url: str, tmp_path: Path, as_admin: bool) -> None:
    username, password, user_id = await fuzz_account(base_url, as_admin)
    async with httpx.AsyncClient(base_url=base_url) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    operations = sum(
        len(path_item) for path, path_item in paths.items() if not STREAMS.search(path)
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
        "FUZZ_BASE_URL": base_url,
        "FUZZ_USERNAME": username,
        "FUZZ_PASSWORD": password,
        "FUZZ_USER_ID": str(user_id),
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--generation-deterministic",
        # A stream answers 200 and never ends, which schemathesis cannot read: its
        # statuses are provoked one by one in tests/test_openapi_statuses.py.
        "--exclude-path-regex",
        STREAMS.pattern,
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-junit-path",
        str(tmp_path / "junit.xml"),
    ]
    result = await asyncio.to_thread(
        subprocess.run,
        command,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The JUnit report has one test case per operation; every one ran, none failed.
    tests, failures, errors = junit_totals(tmp_path / "junit.xml")
    assert tests >= operations
    assert (failures, errors) == (0, 0), output


def junit_totals(report: Path) -> tuple[int, int, int]:
    """Tests, failures and errors in the JUnit report schemathesis wrote."""
    # Written moments ago by our own schemathesis run, so not untrusted XML.
    suite = ElementTree.parse(report).getroot().find("testsuite")  # noqa: S314
    assert suite is not None
    return tuple(int(suite.get(name, -1)) for name in ("tests", "failures", "errors"))  # type: ignore[return-value]
