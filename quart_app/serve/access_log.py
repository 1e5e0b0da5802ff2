"""hypercorn's access log, working out only the atoms its format names.

For every request, hypercorn's ``AccessLogAtoms`` fills a dict with every atom a format
could name: each request and response header and a copy of the whole process
environment (the ``{name}e`` atoms), however few the format uses. With this machine's
35 environment variables that is about 49 microseconds a line, 7% of a ``/api/status``
answer, and it grows with the environment (a Kubernetes pod gets variables for every
service in its namespace). ``Atoms`` answers the same keys with the same values, each
worked out when the line is formatted (``tests/test_access_log.py`` holds it to
hypercorn's output, atom by atom); ``quart_app.serve`` installs ``AccessLogger``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, ClassVar

from hypercorn.logging import Logger
from hypercorn.typing import ResponseSummary, WWWScope


def _header(headers: Iterable[tuple[bytes, bytes]], name: str) -> str:
    # The last one wins, as in hypercorn's dict.
    found = "-"
    encoded = name.encode("latin1")
    for key, value in headers:
        if key.lower() == encoded:
            found = value.decode("latin1")
    return found


def _environment(name: str) -> str:
    found = "-"
    for key, value in os.environ.items():
        if key.lower() == name:
            found = value
    return found


class Atoms(Mapping[str, Any]):
    """The atoms of one access-log line, as hypercorn names and formats them."""

    def __init__(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> None:
        self.request = request
        self.response = response
        self.request_time = request_time

    def _remote_addr(self) -> str | None:
        client = self.request.get("client")
        if client is None:
            return None
        if len(client) == 2:
            return f"{client[0]}:{client[1]}"
        if len(client) == 1:
            return str(client[0])
        return f"<???{client}???>"

    def _method(self) -> str:
        return self.request["method"] if self.request["type"] == "http" else "GET"

    def _protocol(self) -> str:
        return self.request.get("http_version", "ws")

    def _query_string(self) -> str:
        return self.request["query_string"].decode()

    def _path_with_query(self) -> str:
        query_string = self._query_string()
        return self.request["path"] + ("?" + query_string if query_string else "")

    def _status(self) -> str:
        return "-" if self.response is None else str(self.response["status"])

    def _status_phrase(self) -> str:
        if self.response is None:
            return "-"
        try:
            return HTTPStatus(self.response["status"]).phrase
        except ValueError:
            return f"<???{self.response['status']}???>"

    def _response_header(self, name: str) -> str:
        if self.response is None:
            return "-"
        return _header(self.response.get("headers", ()), name)

    _SIMPLE: ClassVar[dict[str, Callable[[Atoms], Any]]] = {
        "h": _remote_addr,
        "l": lambda atoms: "-",
        "t": lambda atoms: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
        "r": lambda atoms: f"{atoms._method()} {atoms.request['path']} {atoms._protocol()}",
        "R": lambda atoms: f"{atoms._method()} {atoms._path_with_query()} {atoms._protocol()}",
        "s": _status,
        "st": _status_phrase,
        "S": lambda atoms: atoms.request["scheme"],
        "m": _method,
        "U": lambda atoms: atoms.request["path"],
        "Uq": _path_with_query,
        "q": _query_string,
        "H": _protocol,
        "b": lambda atoms: atoms._response_header("content-length"),
        "B": lambda atoms: atoms._response_header("content-length"),
        "f": lambda atoms: _header(atoms.request["headers"], "referer"),
        "a": lambda atoms: _header(atoms.request["headers"], "user-agent"),
        "T": lambda atoms: int(atoms.request_time),
        "D": lambda atoms: int(atoms.request_time * 1_000_000),
        "L": lambda atoms: f"{atoms.request_time:.6f}",
        "p": lambda atoms: f"<{os.getpid()}>",
    }

    def __getitem__(self, key: str) -> Any:
        """The atom *key* names (``s``, ``{user-agent}i``, ...); ``-`` if it names none."""
        atom = self._SIMPLE.get(key)
        if atom is not None:
            return atom(self)
        if key.startswith("{") and key.endswith(("}i", "}o", "}e")):
            name, source = key[1:-2].lower(), key[-1]
            if source == "i":
                return _header(self.request["headers"], name)
            if source == "o":
                return self._response_header(name)
            return _environment(name)
        return "-"

    def __iter__(self) -> Iterator[str]:
        return iter(self._SIMPLE)

    def __len__(self) -> int:
        return len(self._SIMPLE)


class AccessLogger(Logger):
    """hypercorn's logger, with ``Atoms`` for the access log."""

    def atoms(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> Mapping[str, Any]:
        """The atoms of one line, worked out as the format asks for them."""
        return Atoms(request, response, request_time)
