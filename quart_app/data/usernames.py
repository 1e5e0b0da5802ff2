"""What a username is, and the case-insensitive key it is stored and looked up by."""

from __future__ import annotations

import re

# ASCII only, so that lower-casing is the same on every backend.
USERNAME_PATTERN = r"[A-Za-z0-9_.-]{3,32}"

_USERNAME = re.compile(USERNAME_PATTERN)


def username_key(username: str) -> str:
    """The case-insensitive form of *username* used for uniqueness and look-ups."""
    return username.strip().lower()


def valid_username(username: str) -> bool:
    """True when *username* keeps the username rule (``USERNAME_PATTERN``)."""
    return _USERNAME.fullmatch(username.strip()) is not None
