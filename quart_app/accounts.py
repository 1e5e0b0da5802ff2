"""Creating, finding and changing users."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .auth import revoke_user_sessions
from .db import db
from .models import USERNAME_PATTERN, User, UserType
from .passwords import passwords

_USERNAME = re.compile(USERNAME_PATTERN)


class UsernameTakenError(Exception):
    """Another user already has this name (compared case-insensitively)."""


class InvalidUsernameError(ValueError):
    """The name breaks the username rule (``models.USERNAME_PATTERN``)."""


class LastAdminError(Exception):
    """The change would leave no active admin to run the site."""


def username_key(username: str) -> str:
    """The case-insensitive form of *username* used for uniqueness and look-ups."""
    return username.strip().lower()


async def find_user(username: str) -> User | None:
    """The user called *username*, in any letter case.

    A name that breaks the username rule cannot exist, so it is not looked up: that
    also keeps text no database can take (NUL, say) away from the query.
    """
    if not _USERNAME.fullmatch(username.strip()):
        return None
    result = await db.session.execute(
        select(User).where(User.username_key == username_key(username))
    )
    return result.scalar_one_or_none()


async def get_user(user_id: int) -> User | None:
    """The user with primary key *user_id*."""
    return await db.get(User, user_id)


async def create_user(username: str, password: str, user_type: UserType = UserType.USER) -> User:
    """Store a new user; raise ``InvalidUsernameError`` or ``UsernameTakenError``."""
    if not _USERNAME.fullmatch(username.strip()):
        raise InvalidUsernameError(username)
    user = User(
        username=username.strip(),
        username_key=username_key(username),
        password_hash=await passwords.hash(password),
        user_type=user_type.value,
    )
    db.session.add(user)
    try:
        await db.session.commit()
    except IntegrityError as error:
        await db.session.rollback()
        raise UsernameTakenError(username) from error
    return user


async def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, else ``None``.

    An unknown name costs one hash verification too, so timing does not reveal
    which names exist.
    """
    user = await find_user(username)
    if not await passwords.verify(user.password_hash if user else None, password):
        return None
    if user is None or not user.is_active:
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash(password)
        await db.session.commit()
    return user


async def set_password(user: User, password: str, *, keep_session: str | None = None) -> None:
    """Change *user*'s password and end their other sessions."""
    user.password_hash = await passwords.hash(password)
    await db.session.commit()
    await revoke_user_sessions(user.id, keep=keep_session)


async def count_active_admins() -> int:
    """How many active admins exist."""
    statement = select(func.count(User.id)).where(
        User.user_type == UserType.ADMIN.value, User.is_active.is_(True)
    )
    return int((await db.session.execute(statement)).scalar_one())


async def _ensure_other_admin(user: User) -> None:
    if user.is_admin and await count_active_admins() <= 1:
        raise LastAdminError(user.username)


async def update_user(
    user: User,
    *,
    user_type: UserType | None = None,
    is_active: bool | None = None,
    password: str | None = None,
) -> None:
    """Apply an admin's changes to *user*.

    Demotion, deactivation and a password reset all end the user's sessions, so the
    change holds from their very next request. Raises ``LastAdminError`` rather than
    leave the site without an active admin.
    """
    losing_admin = (user_type is not None and user_type != UserType.ADMIN) or is_active is False
    if losing_admin:
        await _ensure_other_admin(user)
    if user_type is not None:
        user.user_type = user_type.value
    if is_active is not None:
        user.is_active = is_active
    if password is not None:
        user.password_hash = await passwords.hash(password)
    await db.session.commit()
    if losing_admin or password is not None:
        await revoke_user_sessions(user.id)


async def delete_user(user: User) -> None:
    """Delete *user* with their sessions and things; never the last active admin."""
    await _ensure_other_admin(user)
    await db.session.delete(user)
    await db.session.commit()
