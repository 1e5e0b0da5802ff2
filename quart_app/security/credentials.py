"""Passwords checked and set: the hashing in front of ``data.accounts``.

A password is hashed (or verified) before any connection is taken, so a slow hash
never holds one; the data layer only ever sees hashes.
"""

from __future__ import annotations

from dataclasses import dataclass

from quart_app.data import accounts
from quart_app.data.accounts import InvalidUsernameError
from quart_app.data.models import Account, UserType
from quart_app.data.usernames import valid_username
from quart_app.security.passwords import passwords


@dataclass(frozen=True)
class VerifiedAccount:
    """An account whose password was just checked, with the hash it was checked against."""

    account: Account
    password_hash: str


async def create_user(username: str, password: str, user_type: UserType = UserType.USER) -> Account:
    """Store a new user; raise ``InvalidUsernameError`` or ``UsernameTakenError``."""
    if not valid_username(username):
        raise InvalidUsernameError(username)
    return await accounts.insert_user(username, await passwords.hash(password), user_type)


async def authenticate(username: str, password: str) -> VerifiedAccount | None:
    """The active user with these credentials, else ``None``.

    An unknown name costs one hash verification too, so timing does not reveal
    which names exist. No connection is held while the hash is checked.
    """
    row = await accounts.find_credentials(username)
    password_hash: str | None = row["password_hash"] if row else None
    if not await passwords.verify(password_hash, password):
        return None
    if row is None or password_hash is None or not row["is_active"]:
        return None
    if passwords.needs_rehash(password_hash):
        new_hash = await passwords.hash(password)
        if await accounts.replace_password_hash(row["id"], password_hash, new_hash):
            password_hash = new_hash
    return VerifiedAccount(Account.from_row(row), password_hash)


async def check_password(account: Account, password: str) -> str | None:
    """The stored hash if *password* is *account*'s current password, else ``None``."""
    password_hash = await accounts.password_hash_of(account.id)
    return password_hash if await passwords.verify(password_hash, password) else None


async def set_password(account: Account, password: str, *, keep_session: str | None = None) -> None:
    """Change *account*'s password and end their other sessions, together."""
    password_hash = await passwords.hash(password)
    await accounts.store_password_hash(account, password_hash, keep_session=keep_session)


async def update_user(
    user_id: int,
    *,
    user_type: UserType | None = None,
    is_active: bool | None = None,
    password: str | None = None,
) -> Account:
    """Apply an admin's changes to user *user_id* (``accounts.change_user``), a new
    password hashed first; return the changed account."""
    password_hash = await passwords.hash(password) if password is not None else None
    return await accounts.change_user(
        user_id, user_type=user_type, is_active=is_active, password_hash=password_hash
    )
