"""argon2id password hashing, run in worker threads so a login never blocks the event loop.

Off the loop is not enough on a small machine: each hash is ~100 ms of CPU, and a burst
of sign-ins would take the cores from the event loop. The hashing threads therefore
run at the lowest scheduling priority (Linux), so the loop wins the CPU whenever it has
work, and there are only a few of them, which bounds argon2's memory (64 MiB a hash).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from quart import Quart, current_app

_EXTENSION_KEY = "quart_app.passwords"
HASHING_THREADS = 2
_LOWEST_PRIORITY = 19
T = TypeVar("T")


def _lower_this_threads_priority() -> None:
    # setpriority on a thread id renices just that thread on Linux; elsewhere it would
    # renice the whole process, so leave other systems alone.
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _LOWEST_PRIORITY)


def _hashing_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=HASHING_THREADS,
        thread_name_prefix="argon2",
        initializer=_lower_this_threads_priority,
    )


@dataclass
class _HasherState:
    hasher: PasswordHasher
    pool: ThreadPoolExecutor = field(default_factory=_hashing_pool)
    # Hash checked when the username is unknown, so both failures cost the same time.
    decoy_hash: str | None = field(default=None)


class Passwords:
    """Binds an argon2id hasher, with costs from the app config, to each app."""

    def init_app(self, app: Quart) -> None:
        """Read ``ARGON2_*`` from *app*'s config; shut the hashing threads down with it."""
        state = _HasherState(
            PasswordHasher(
                time_cost=app.config["ARGON2_TIME_COST"],
                memory_cost=app.config["ARGON2_MEMORY_COST"],
                parallelism=app.config["ARGON2_PARALLELISM"],
                type=Type.ID,
            )
        )
        app.extensions[_EXTENSION_KEY] = state

        async def shut_down_hashing() -> None:
            state.pool.shutdown(wait=False, cancel_futures=True)

        app.after_serving(shut_down_hashing)

    @staticmethod
    def _state() -> _HasherState:
        state: _HasherState = current_app.extensions[_EXTENSION_KEY]
        return state

    async def _in_pool(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._state().pool, work)

    async def hash(self, password: str) -> str:
        """Hash *password* in a hashing thread."""
        hasher = self._state().hasher
        return await self._in_pool(lambda: hasher.hash(password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check *password* against *password_hash*; with ``None``, spend the same time and fail."""
        state = self._state()
        if password_hash is None:
            if state.decoy_hash is None:
                state.decoy_hash = await self.hash("decoy password, never matches")
            decoy = state.decoy_hash
            await self._in_pool(lambda: self._check(state.hasher, decoy, password))
            return False
        return await self._in_pool(lambda: self._check(state.hasher, password_hash, password))

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the stored hash was made with other costs than the configured ones."""
        return self._state().hasher.check_needs_rehash(password_hash)

    @staticmethod
    def _check(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
        try:
            return hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


passwords = Passwords()
