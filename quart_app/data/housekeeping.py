"""Deleting what has run its course (sessions, old events) while the app serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress

from quart import Quart

from quart_app.data.pool import DatabaseUnavailable


def prune_periodically(
    app: Quart, interval: float, prune: Callable[[], Awaitable[int]], what: str
) -> None:
    """Run *prune* every *interval* seconds while *app* serves (0 or less: never).

    Each round logs how many *what* it deleted; a database that is out of reach skips
    a round, and the next one tries again.
    """
    if interval <= 0:
        return

    async def rounds() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                async with app.app_context():
                    pruned = await prune()
            except DatabaseUnavailable as error:
                app.logger.warning("pruning %s skipped: %s", what, error)
            else:
                app.logger.info("pruned %d %s", pruned, what)

    @app.while_serving
    async def pruning() -> AsyncGenerator[None, None]:
        task = asyncio.create_task(rounds())
        yield
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
