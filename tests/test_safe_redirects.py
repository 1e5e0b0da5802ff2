"""Only local paths survive as ``next``."""

from __future__ import annotations

import pytest

from quart_app.safe_redirects import safe_next


@pytest.mark.parametrize(
    "target",
    ["/", "/admin", "/api/things?limit=5", "/a/b#frag", "/path%2F%2Fencoded"],
)
def test_local_paths_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "admin",
        "//evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "/\tjavascript",
        "/\nLocation: x",
        "///evil.example",
    ],
)
def test_anything_that_could_leave_the_site_is_refused(target: str | None) -> None:
    assert safe_next(target) is None
