"""Keeping the garbage collector's pauses short in a worker that holds many live streams.

CPython's full collection walks every object it tracks, and an open stream holds about
180 of them (its coroutines, contexts and hypercorn's connection): a worker with 5,000
streams paused for about a second. Python starts one whenever the objects promoted to
its oldest generation since the last reach a quarter of it, and each stream promotes a
few at every wait (they live the 15 s of a keep-alive, then die), so that worker paused
about every 30 s (docs/benchmarks.md, scenario S).

Here a serving worker moves what has survived out of the collector's sight
(``gc.freeze()``) every ``GC_FREEZE_INTERVAL`` seconds, so each collection walks only
what is newer. A frozen object is still freed when its last reference goes; only
garbage in reference cycles stays (a closed stream leaves about a hundred such objects).
So once the worker's allocated memory blocks (``sys.getallocatedblocks()``: every small
object, tracked or not) outnumber those left by the last full collection by
``GC_FROZEN_GROWTH`` (a share), the worker thaws everything and collects in full. Memory
stays within that share, and a full pause comes when the objects in use have grown or
been replaced by that share, not every 30 s while nothing changes. (The blocks, not
``gc.get_freeze_count()``: that walks every frozen object, 24 ms for 600,000, and the
blocks cost a tenth of a millisecond.)

``gc`` is one per process: the first app to start serving with a positive interval
starts it, the last to stop ends it and thaws everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys

from quart import Quart

# Blocks that may always be added before a full collection, however few the worker holds:
# an idle worker's own churn is not worth a pause.
_GROWTH_FLOOR = 50_000


class FrozenOldObjects:
    """Freezes the survivors at a fixed interval; thaws and collects them in full when
    the allocated blocks have grown by *growth* (a share) since the last full collection."""

    def __init__(self, interval: float, growth: float) -> None:
        self.interval = interval
        self.growth = growth
        self.steps = 0
        self.full_collections = 0
        # Allocated blocks past which the next step collects in full.
        self.limit = 0

    def collect_in_full(self) -> None:
        """Thaw every frozen object, collect every generation, freeze the survivors."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.full_collections += 1
        blocks = sys.getallocatedblocks()
        self.limit = blocks + max(int(blocks * self.growth), _GROWTH_FLOOR)

    def step(self) -> None:
        """Freeze what has survived since the last step; collect in full past the limit."""
        gc.freeze()
        if sys.getallocatedblocks() > self.limit:
            self.collect_in_full()
        self.steps += 1

    async def run(self) -> None:
        """Step every *interval* seconds until cancelled."""
        self.collect_in_full()
        while True:
            await asyncio.sleep(self.interval)
            self.step()


_serving: set[int] = set()
_task: asyncio.Task[None] | None = None
_policy: FrozenOldObjects | None = None


def current_policy() -> FrozenOldObjects | None:
    """The policy this process runs now, if any app of it started one."""
    return _policy


def init_app(app: Quart) -> None:
    """Run the policy while *app* serves, if its ``GC_FREEZE_INTERVAL`` is positive."""
    interval: float = app.config["GC_FREEZE_INTERVAL"]
    if interval <= 0:
        return

    @app.before_serving
    async def start_freezing() -> None:
        global _task, _policy
        _serving.add(id(app))
        if _task is None:
            _policy = FrozenOldObjects(interval, app.config["GC_FROZEN_GROWTH"])
            _task = asyncio.create_task(_policy.run())

    @app.after_serving
    async def stop_freezing() -> None:
        global _task, _policy
        _serving.discard(id(app))
        if _serving or _task is None:
            return
        _task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _task
        _task, _policy = None, None
        gc.unfreeze()
