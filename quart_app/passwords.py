"""argon2id password hashing, run in worker threads so a login never blocks the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from quart import Quart, current_app

_EXTENSION_KEY = "quart_app.passwords"


@dataclass
class _HasherState:
    hasher: PasswordHasher
    # Hash checked when the username is unknown, so both failures cost the same time.
    decoy_hash: str | None = field(default=None)


class Passwords:
    """Binds an argon2id hasher, with costs from the app config, to each app."""

    def init_app(self, app: Quart) -> None:
        """Read ``ARGON2_*`` from *app*'s config."""
        app.extensions[_EXTENSION_KEY] = _HasherState(
            PasswordHasher(
                time_cost=app.config["ARGON2_TIME_COST"],
                memory_cost=app.config["ARGON2_MEMORY_COST"],
                parallelism=app.config["ARGON2_PARALLELISM"],
                type=Type.ID,
            )
        )

    @staticmethod
    def _state() -> _HasherState:
        state: _HasherState = current_app.extensions[_EXTENSION_KEY]
        return state

    async def hash(self, password: str) -> str:
        """Hash *password* in a worker thread."""
        return await asyncio.to_thread(self._state().hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check *password* against *password_hash*; with ``None``, spend the same time and fail."""
        state = self._state()
        if password_hash is None:
            if state.decoy_hash is None:
                state.decoy_hash = await self.hash("decoy password, never matches")
            await asyncio.to_thread(self._check, state.hasher, state.decoy_hash, password)
            return False
        return await asyncio.to_thread(self._check, state.hasher, password_hash, password)

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
