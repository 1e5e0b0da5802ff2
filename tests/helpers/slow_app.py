"""A tiny ASGI app with one slow route, for testing how servers stop and replace workers.

``GET /slow`` notes ``slow request started in worker <pid>`` on stderr, waits
``SLOW_SECONDS`` and answers 200 ``done``; every other path answers 200 ``ok`` at once.
It needs no database or settings, so the tests that serve it are about process
management alone.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Well inside hypercorn.toml's graceful_timeout (10 s), well beyond the time an idle
# worker takes to stop.
SLOW_SECONDS = 4.0
STARTED_MARK = "slow request started in worker"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b"ok"
    if scope["path"] == "/slow":
        print(f"{STARTED_MARK} {os.getpid()}", file=sys.stderr, flush=True)
        await asyncio.sleep(SLOW_SECONDS)
        body = b"done"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
