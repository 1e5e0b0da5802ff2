"""Schemathesis hooks for tests/test_fuzz.py, loaded through SCHEMATHESIS_HOOKS.

Authentication: a bearer token fetched with the credentials in FUZZ_USERNAME and
FUZZ_PASSWORD. Schemathesis caches it and fetches a new one after a 401, which
happens whenever the fuzzer itself calls POST /api/logout or DELETE /api/tokens/current.
"""

from __future__ import annotations

import os
from typing import Any

import requests
import schemathesis


@schemathesis.auth()
class BearerToken:
    """A fresh token from POST /api/tokens."""

    def get(self, case: Any, ctx: Any) -> str:
        response = requests.post(
            f"{os.environ['FUZZ_BASE_URL']}/api/tokens",
            json={"username": os.environ["FUZZ_USERNAME"], "password": os.environ["FUZZ_PASSWORD"]},
            timeout=30,
        )
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Keep the fuzzer from changing or deleting the account it signs in with."""
    user_id = (case.path_parameters or {}).get("user_id")
    return str(user_id) != os.environ["FUZZ_USER_ID"]
