"""Browser hardening headers."""

from __future__ import annotations

from quart import Response

# Scripts and styles only from this origin: no inline script, so injected markup
# cannot run code. frame-ancestors forbids framing (clickjacking).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


# Every response; a view that set one of these keeps its own value.
HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"))
PAGE_HEADERS = (
    *HEADERS,
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
)
_HEADERS = tuple((name, name.lower(), value) for name, value in HEADERS)
_PAGE_HEADERS = tuple((name, name.lower(), value) for name, value in PAGE_HEADERS)


def harden(response: Response, *, is_html: bool) -> None:
    """Add the headers every response needs, and on HTML the page-only ones."""
    headers = response.headers
    # One pass over the few headers already set: Werkzeug answers each missing-key
    # lookup (setdefault, "in") by raising and catching an HTTP exception.
    present = {name.lower() for name, _ in headers.items()}
    for name, lower_name, value in _PAGE_HEADERS if is_html else _HEADERS:
        if lower_name not in present:
            headers.add(name, value)
