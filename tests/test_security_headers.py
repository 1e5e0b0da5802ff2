"""Hardening headers on every answer, and a CSP that no template needs to weaken."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quart_app.web.security_headers import CONTENT_SECURITY_POLICY
from tests.helpers.apps import Client

TEMPLATES = Path(__file__).resolve().parent.parent / "quart_app" / "templates"


@pytest.mark.parametrize("path", ["/", "/login", "/no/such/page"])
async def test_html_pages_carry_the_browser_hardening_headers(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert csp == CONTENT_SECURITY_POLICY
    directives = dict(part.split(" ", 1) for part in csp.split("; "))
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/api/status", "/api/no/such/route", "/static/js/api.js"])
async def test_other_answers_are_nosniff(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_have_no_inline_script_or_style(template: Path) -> None:
    html = template.read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="' in tag, f"inline <script> in {template.name}"
    assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler in {template.name}"
    assert "<style" not in html
    assert not re.search(r"\sstyle\s*=", html), f"inline style attribute in {template.name}"
