"""Request smuggling, tried over a raw socket against the production serving command.

Each request below could be split into messages one way by a proxy and another way by
hypercorn. RFC 9112 §6.1: reject it (or read it one defined way), then close the
connection. Each carries a second, hidden request after its body: it must never be
answered, and nothing more may be read from that connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import pytest
from hypercorn.typing import Scope

from quart_app.http.framing import RequestFramingGuard, framing_problem
from tests.helpers.live import LiveServer, production_server

HIDDEN = b"GET /api/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
POST = b"POST /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"

VECTORS: dict[str, tuple[bytes, int]] = {
    "Content-Length and Transfer-Encoding": (
        POST + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
        400,
    ),
    "Transfer-Encoding and Content-Length": (
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + HIDDEN,
        400,
    ),
    "chunked not the final coding": (
        POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + HIDDEN,
        400,
    ),
    "chunked twice": (
        POST
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        + HIDDEN,
        400,
    ),
    "an unknown coding": (
        POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
        400,
    ),
    "a misspelt chunked": (POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + HIDDEN, 400),
    "a signed Content-Length": (POST + b"Content-Length: +4\r\n\r\nabcd" + HIDDEN, 400),
    "an oversized Content-Length": (
        POST + b"Content-Length: 99999999999999999999999999\r\n\r\nabcd" + HIDDEN,
        400,
    ),
    "two Content-Lengths": (
        POST + b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcd" + HIDDEN,
        400,
    ),
    "obs-fold": (POST + b"X-Note: a\r\n b\r\nContent-Length: 0\r\n\r\n" + HIDDEN, 400),
    "obs-fold of Content-Length": (
        POST + b"Content-Length:\r\n 4\r\n\r\nabcd" + HIDDEN,
        400,
    ),
    "two Content-Types": (
        POST + b"Content-Type: application/json\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 2\r\n\r\n{}" + HIDDEN,
        400,
    ),
    "CONNECT": (b"CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\n" + HIDDEN, 405),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One production server (quart_app.serve) on SQLite for the whole module."""
    with production_server(tmp_path_factory.mktemp("framing")) as server:
        yield server


async def _exchange(server: LiveServer, request: bytes) -> tuple[bytes, bool]:
    """Send *request* at once; what comes back, and whether the server closed after it."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        received = b""
        try:
            async with asyncio.timeout(10):
                while chunk := await reader.read(65536):
                    received += chunk
        except TimeoutError:
            return received, False
        return received, True
    finally:
        writer.close()


@pytest.mark.live
@pytest.mark.parametrize("vector", list(VECTORS))
async def test_an_ambiguous_request_is_refused_and_its_connection_closed(
    served: LiveServer, vector: str
) -> None:
    request, status = VECTORS[vector]
    received, closed = await _exchange(served, request)
    status_lines = [line for line in received.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert status_lines[:1] == [f"HTTP/1.1 {status} ".encode()], received
    assert len(status_lines) == 1, f"the hidden request was answered: {received!r}"
    assert closed, f"the connection was left open after: {received!r}"
    assert b"/api/smuggled" not in served.log_path.read_bytes()


@pytest.mark.live
async def test_a_sound_request_keeps_its_connection(served: LiveServer) -> None:
    """The guard refuses only the ambiguous: two requests on one connection both answer."""
    host, port = served.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for _ in range(2):
            writer.write(POST + b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.startswith(b"HTTP/1.1 405 "), status
            length = 0
            while (line := await asyncio.wait_for(reader.readline(), 10)) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
    finally:
        writer.close()


def _scope(method: str, headers: list[tuple[bytes, bytes]], http_version: str = "1.1") -> Scope:
    return cast(
        Scope,
        {"type": "http", "method": method, "headers": headers, "http_version": http_version},
    )


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("POST", [(b"content-length", b"2")], None),
        ("POST", [(b"transfer-encoding", b"chunked")], None),
        ("POST", [(b"content-length", b"2"), (b"transfer-encoding", b"chunked")], 400),
        ("POST", [(b"content-type", b"a/b"), (b"content-type", b"a/b")], 400),
        ("CONNECT", [], 405),
    ],
)
def test_framing_problem(
    method: str, headers: list[tuple[bytes, bytes]], expected: int | None
) -> None:
    problem = framing_problem(_scope(method, headers))
    assert (problem[0] if problem else None) == expected


async def test_over_http2_the_refusal_has_no_connection_header() -> None:
    """HTTP/2 forbids the header: each request is a stream of its own there."""
    sent: list[Any] = []

    async def app(*_args: Any) -> None:
        raise AssertionError("the app must not see the request")

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await RequestFramingGuard(app)(_scope("CONNECT", [], "2"), receive, send)
    assert sent[0]["status"] == 405
    assert b"connection" not in {name for name, _ in sent[0]["headers"]}
