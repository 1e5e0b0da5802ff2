"""Redirect targets that can only ever lead to a path on this site."""

from __future__ import annotations

from urllib.parse import urlsplit

from quart import request, url_for


def safe_next(target: str | None) -> str | None:
    """Return *target* when it is a local path (``/...``), else ``None``.

    Refuses absolute URLs, scheme-relative ``//host``, the ``/\\host`` form browsers
    read as ``//host``, and anything with control characters.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def login_url_for_current_request() -> str:
    """The sign-in page's URL, with ``next`` set to bring the user back here."""
    here = request.full_path if request.query_string else request.path
    return url_for("main.login", next=safe_next(here))
