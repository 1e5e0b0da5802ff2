"""The access log's atoms: hypercorn's values, worked out only when named."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypercorn.logging import AccessLogAtoms, Logger
from hypercorn.typing import ResponseSummary, WWWScope

from quart_app.serve.access_log import AccessLogger, Atoms
from quart_app.serve.supervisor import load_config, parse_arguments

HTTP_REQUEST: Any = {
    "type": "http",
    "http_version": "1.1",
    "method": "POST",
    "scheme": "https",
    "path": "/api/things",
    "query_string": b"limit=5&offset=10",
    "client": ("127.0.0.1", 50123),
    "headers": [
        (b"host", b"app.example"),
        (b"user-agent", b"httpx/0.28"),
        (b"referer", b"https://app.example/"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"x-forwarded-for", b"10.0.0.2"),  # the last one is logged
    ],
}
WEBSOCKET_REQUEST: Any = {
    **HTTP_REQUEST,
    "type": "websocket",
    "query_string": b"",
    "client": ("::1",),
}
ANONYMOUS_REQUEST: Any = {**HTTP_REQUEST, "client": None, "headers": []}
ODD_CLIENT_REQUEST: Any = {**HTTP_REQUEST, "client": ("a", 1, "b")}
RESPONSE: Any = {
    "status": 201,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", b"57"),
        (b"X-Request-ID", b"abc123"),
    ],
}
UNKNOWN_STATUS_RESPONSE: Any = {"status": 599, "headers": []}

EVERY_ATOM = " ".join(
    f"{name}=%({name})s"
    for name in (
        *("h", "l", "t", "r", "R", "s", "st", "S", "m", "U", "Uq", "q", "H"),
        *("b", "B", "f", "a", "T", "D", "L", "p", "u", "nonsense"),
        *("{User-Agent}i", "{x-forwarded-for}i", "{missing}i", "{x-request-id}o"),
        *("{Content-Type}o", "{missing}o", "{access_log_home}e", "{missing}e", "{x}z"),
    )
)


@pytest.mark.parametrize(
    ("request_scope", "response"),
    [
        (HTTP_REQUEST, RESPONSE),
        (WEBSOCKET_REQUEST, RESPONSE),
        (ANONYMOUS_REQUEST, RESPONSE),
        (ODD_CLIENT_REQUEST, UNKNOWN_STATUS_RESPONSE),
        (HTTP_REQUEST, None),
    ],
)
def test_every_atom_formats_as_hypercorns_own(
    request_scope: WWWScope,
    response: ResponseSummary | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCESS_LOG_HOME", "/srv/app")
    # Both read the clock; one frozen moment keeps %(t)s comparable.
    frozen, strftime = time.localtime(), time.strftime
    monkeypatch.setattr(time, "strftime", lambda format, *_: strftime(format, frozen))
    expected = EVERY_ATOM % AccessLogAtoms(request_scope, response, 1.2345678)
    assert "{access_log_home}e=/srv/app" in expected
    assert EVERY_ATOM % Atoms(request_scope, response, 1.2345678) == expected


def test_the_served_logger_writes_the_project_format_through_the_atoms() -> None:
    config = load_config(parse_arguments(["-c", "hypercorn.toml"]))
    logger = config.log
    assert isinstance(logger, AccessLogger)
    atoms = logger.atoms(HTTP_REQUEST, RESPONSE, 0.0042)
    assert isinstance(atoms, Atoms)
    assert config.access_log_format % atoms == (
        'client=127.0.0.1:50123 request="POST /api/things 1.1" status=201 bytes=57 '
        'duration_us=4200 request_id=abc123 agent="httpx/0.28"'
    )


def test_a_statsd_host_keeps_hypercorns_statsd_logger(tmp_path: Path) -> None:
    # hypercorn's workers swap in their statsd logger only over its default Logger.
    settings = tmp_path / "statsd.toml"
    settings.write_text('statsd_host = "127.0.0.1:8125"\n')
    assert load_config(parse_arguments(["-c", str(settings)])).logger_class is Logger
