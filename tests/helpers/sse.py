"""Reading Server-Sent Events in tests, as the HTML standard's EventSource parses them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from quart.testing.connections import TestHTTPConnection

from tests.helpers.apps import Client


@dataclass
class ServerEvent:
    """One dispatched event; comment lines and ``retry:`` are collected on the parser."""

    id: str | None
    event: str
    data: str

    @property
    def json(self) -> Any:
        """The event's data, parsed."""
        return json.loads(self.data)


@dataclass
class EventParser:
    """Splits a byte stream into events, field by field."""

    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    _buffer: str = ""
    _id: str | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    @property
    def last_id(self) -> str | None:
        """The last ``id:`` field seen, with or without an event (EventSource's
        Last-Event-ID)."""
        return self._id

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        """The events completed by *chunk*."""
        self._buffer += chunk.decode()
        events = []
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            line = line.removesuffix("\r")
            if line == "":
                if self._data or self._event:
                    events.append(
                        ServerEvent(self._id, self._event or "message", "\n".join(self._data))
                    )
                self._event, self._data = "", []
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                self._id = value
            elif name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
            elif name == "retry" and value.isdigit():
                self.retry = int(value)
        return events


class EventReader:
    """Events read from a stream's body, chunk by chunk, whatever carries it."""

    # Seconds to wait, by default, for what the stream sends next.
    patience = 5.0

    def __init__(self) -> None:
        self.parser = EventParser()
        self._pending: list[ServerEvent] = []
        self.ended = False

    @property
    def status(self) -> int | None:
        """The answer's status, once it started."""
        raise NotImplementedError

    async def _chunk(self) -> bytes | None:
        """The body's next chunk; ``None`` once it ended."""
        raise NotImplementedError

    async def _read(self) -> None:
        chunk = await self._chunk()
        if chunk is None:
            self.ended = True
            raise EOFError("the stream ended")
        self._pending.extend(self.parser.feed(chunk))

    async def started(self, within: float | None = None) -> None:
        """Wait for the answer to start (its status and the ``retry:`` frame)."""
        async with asyncio.timeout(within or self.patience):
            while self.parser.retry is None:
                await self._read()
                if self.status != 200:
                    raise AssertionError(f"the stream was refused: {self.status}")

    async def next_event(self, within: float | None = None) -> ServerEvent:
        """The next event; fails if none comes *within* seconds; ``EOFError`` at the end."""
        async with asyncio.timeout(within or self.patience):
            while not self._pending:
                await self._read()
        return self._pending.pop(0)

    async def events(self, count: int, within: float | None = None) -> list[ServerEvent]:
        """The next *count* events."""
        return [await self.next_event(within) for _ in range(count)]

    async def until_end(self, within: float | None = None) -> list[ServerEvent]:
        """Every event until the stream ends (fails after *within* seconds)."""
        events = []
        try:
            while True:
                events.append(await self.next_event(within))
        except EOFError:
            return events

    async def comments(self, count: int, within: float = 30.0) -> list[ServerEvent]:
        """Read until *count* comment lines came; return the events read meanwhile.

        (A timeout around ``next_event`` would cancel httpx's read and close the stream.)
        """
        async with asyncio.timeout(within):
            while len(self.parser.comments) < count:
                await self._read()
        return self._pending


class InProcessStream(EventReader):
    """A stream opened with the Quart test client."""

    def __init__(self, connection: TestHTTPConnection) -> None:
        super().__init__()
        self.connection = connection

    @property
    def status(self) -> int | None:
        """The answer's status, once it started."""
        return self.connection.status_code

    async def _chunk(self) -> bytes | None:
        chunk = await self.connection.receive()
        # Quart's last, empty body message: the stream ended.
        return None if chunk == b"" and self.status is not None else chunk


@asynccontextmanager
async def open_stream(
    client: Client, path: str = "/api/things/events", headers: dict[str, str] | None = None
) -> AsyncIterator[InProcessStream]:
    """Open *path* as a stream with *client*; the client hangs up after."""
    async with client.request(path, headers=headers) as connection:
        await connection.send_complete()
        # The protocol Quart's client is typed with lacks the attributes tests read.
        stream = InProcessStream(cast(TestHTTPConnection, connection))
        try:
            yield stream
        finally:
            await connection.disconnect()


class HttpStream(EventReader):
    """A stream read over real HTTP with httpx."""

    patience = 10.0

    def __init__(self, response: httpx.Response) -> None:
        super().__init__()
        self.response = response
        self._chunks = response.aiter_raw()

    @property
    def status(self) -> int:
        """The answer's status."""
        return self.response.status_code

    async def _chunk(self) -> bytes | None:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return None


@asynccontextmanager
async def http_stream(
    base_url: str,
    headers: dict[str, str],
    path: str = "/api/things/events",
    **client_options: Any,
) -> AsyncIterator[HttpStream]:
    """Open *path* on its own connection (a client of its own); hang up after."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30, **client_options) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        yield HttpStream(response)
