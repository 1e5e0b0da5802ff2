"""Only local paths survive as ``next``."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quart_app.security.safe_redirects import safe_next


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


SITE = "https://site.example/login?next=x"


def as_a_browser_reads_it(target: str) -> str:
    """WHATWG URL parsing drops tabs and newlines and reads backslashes as slashes."""
    return target.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")


@given(st.text())
def test_whatever_survives_stays_on_the_site(target: str) -> None:
    kept = safe_next(target)
    if kept is None:
        return
    assert kept == target
    resolved = urlsplit(urljoin(SITE, as_a_browser_reads_it(kept)))
    assert (resolved.scheme, resolved.netloc) == ("https", "site.example")


@given(st.sampled_from(["//", "/\\", "\\\\", "https:", "javascript:", "/\t/"]), st.text())
def test_prefixes_that_leave_the_site_never_survive(prefix: str, rest: str) -> None:
    assert safe_next(prefix + "evil.example" + rest) is None


@given(st.lists(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1), max_size=5))
def test_plain_local_paths_survive(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    assert safe_next(path) == path
