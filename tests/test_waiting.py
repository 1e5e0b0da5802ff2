"""tests/helpers/waiting.py: a wait ends with the condition's value, or fails saying what."""

from __future__ import annotations

import itertools

import pytest

from tests.helpers.waiting import NeverHappened, eventually


async def test_eventually_returns_the_first_truthy_value_of_a_plain_condition() -> None:
    counter = itertools.count()
    assert await eventually(lambda: next(counter) >= 3 and "third", every=0) == "third"


async def test_eventually_awaits_an_async_condition() -> None:
    checks: list[int] = []

    async def rows() -> list[int]:
        checks.append(len(checks))
        return checks[2:]

    found: list[int] = await eventually(rows, every=0)
    assert found == [2]


async def test_eventually_fails_naming_what_it_awaited_and_the_last_value() -> None:
    with pytest.raises(NeverHappened, match=r"for the answer; last seen: \[\]"):
        await eventually(list, within=0.05, every=0.01, what="the answer")


async def test_eventually_treats_ignored_errors_as_not_yet() -> None:
    counter = itertools.count()

    def connect() -> int:
        if (attempt := next(counter)) < 2:
            raise ConnectionRefusedError(attempt)
        return attempt

    assert await eventually(connect, every=0, ignoring=(OSError,)) == 2
    with pytest.raises(NeverHappened, match="last seen: ZeroDivisionError") as failed:
        await eventually(lambda: 1 / 0, within=0, ignoring=(ZeroDivisionError,))
    assert isinstance(failed.value.__cause__, ZeroDivisionError)


async def test_errors_not_ignored_end_the_wait() -> None:
    with pytest.raises(ZeroDivisionError):
        await eventually(lambda: 1 / 0)
