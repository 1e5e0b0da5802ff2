"""quart_app.http.collector: a serving worker keeps its old objects out of the collector's walks,
and still collects the garbage among them."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from quart import Quart

from quart_app.http.collector import FrozenOldObjects, current_policy
from tests.helpers.apps import make_app
from tests.helpers.waiting import eventually

INTERVAL = 0.02


class Cycle:
    """Garbage only the cycle collector can free: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


@asynccontextmanager
async def serving(app: Quart) -> AsyncIterator[FrozenOldObjects]:
    """*app* serving, and the policy its process runs."""
    async with app.test_app():
        policy = current_policy()
        assert policy is not None
        yield policy


async def steps(policy: FrozenOldObjects, count: int) -> None:
    """Until the policy has stepped *count* more times."""
    target = policy.steps + count
    await eventually(lambda: policy.steps >= target, what=f"{count} steps")


async def test_a_serving_app_freezes_its_survivors_and_thaws_them_when_it_stops(
    database_url: str,
) -> None:
    assert gc.get_freeze_count() == 0
    async with serving(make_app(database_url, GC_FREEZE_INTERVAL=INTERVAL)) as policy:
        await steps(policy, 1)
        assert gc.get_freeze_count() > 0
    assert current_policy() is None
    assert gc.get_freeze_count() == 0


async def test_without_an_interval_nothing_is_frozen(database_url: str) -> None:
    async with make_app(database_url, GC_FREEZE_INTERVAL=0).test_app():
        assert current_policy() is None
        assert gc.get_freeze_count() == 0


async def test_cyclic_garbage_frozen_with_the_survivors_is_collected_once_memory_grows_by_the_share(
    database_url: str,
) -> None:
    app = make_app(database_url, GC_FREEZE_INTERVAL=INTERVAL, GC_FROZEN_GROWTH=0.25)
    async with serving(app) as policy:
        cycle = Cycle()
        alive = weakref.ref(cycle)
        await steps(policy, 2)
        del cycle
        gc.collect()
        # Frozen: out of a collection's reach, which is why the policy thaws.
        assert alive() is not None
        full_collections = policy.full_collections
        ballast: list[list[int]] = [
            [] for _ in range(policy.limit - sys.getallocatedblocks() + 1_000)
        ]
        await eventually(
            lambda: policy.full_collections > full_collections, what="a full collection"
        )
        assert alive() is None
        # The objects still in use stay frozen, and set the next limit.
        assert gc.get_freeze_count() >= len(ballast)
        assert policy.limit >= sys.getallocatedblocks() * 1.2


async def test_frozen_objects_freed_by_their_count_never_lead_to_a_full_collection(
    database_url: str,
) -> None:
    async with serving(make_app(database_url, GC_FREEZE_INTERVAL=INTERVAL)) as policy:
        await steps(policy, 1)
        full_collections = policy.full_collections
        margin = policy.limit - sys.getallocatedblocks()
        # Five times half the margin come, are frozen, and go: the way a stream's
        # waiting objects do. Counting them all would have passed the limit.
        for _ in range(5):
            ballast: list[list[int]] = [[] for _ in range(margin // 2)]
            await steps(policy, 2)
            del ballast
        await steps(policy, 2)
        assert policy.full_collections == full_collections


async def test_apps_serving_in_one_process_share_the_policy_until_the_last_stops(
    database_url: str,
) -> None:
    first = make_app(database_url, GC_FREEZE_INTERVAL=INTERVAL)
    second = make_app(database_url, GC_FREEZE_INTERVAL=INTERVAL)
    async with serving(first) as policy:
        async with serving(second) as shared:
            assert shared is policy
        await steps(policy, 1)
        assert current_policy() is policy
        assert gc.get_freeze_count() > 0
    assert current_policy() is None
    assert gc.get_freeze_count() == 0
