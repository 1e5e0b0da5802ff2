"""Storing, finding and changing users.

Passwords arrive here already hashed (``security.credentials`` hashes them before a
connection is taken); every change that must hold together (a new password and the
end of the old sessions, the last-admin check and the change it allows) runs in one
short transaction.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import String, bindparam, func, insert, select, update
from sqlalchemy import delete as sql_delete

from quart_app.data.base import MAX_ID, utcnow
from quart_app.data.database import db
from quart_app.data.events import (
    USER_CREATED,
    USER_DELETED,
    USER_UPDATED,
    append_event,
    logged_transaction,
)
from quart_app.data.models import ACCOUNT_COLUMNS, Account, User, UserType
from quart_app.data.pool import Connection, ConstraintViolation
from quart_app.data.session_store import revoke_user_sessions
from quart_app.data.statements import Query, Row
from quart_app.data.usernames import username_key, valid_username


class UsernameTakenError(Exception):
    """Another user already has this name (compared case-insensitively)."""


class InvalidUsernameError(ValueError):
    """The name breaks the username rule (``usernames.USERNAME_PATTERN``)."""


class LastAdminError(Exception):
    """The change would leave no active admin to run the site."""


class UserNotFoundError(LookupError):
    """No user has this id (any more)."""


_FIND_BY_KEY = Query(
    select(*ACCOUNT_COLUMNS, User.password_hash).where(User.username_key == bindparam("key"))
)
_GET = Query(select(*ACCOUNT_COLUMNS).where(User.id == bindparam("id")))
_PASSWORD_HASH = Query(select(User.password_hash).where(User.id == bindparam("id")))
_ALL = Query(select(*ACCOUNT_COLUMNS).order_by(User.id))
_PAGE = Query(
    select(*ACCOUNT_COLUMNS, func.count().over().label("total"))
    .order_by(User.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_COUNT = Query(select(func.count().label("total")).select_from(User))
_COUNT_ACTIVE_ADMINS = Query(
    select(func.count().label("admins")).where(
        User.user_type == UserType.ADMIN.value, User.is_active.is_(True)
    )
)
# Locks every active admin row (PostgreSQL; SQLite's BEGIN IMMEDIATE already runs
# writers one at a time), so two admins removing each other take turns, and the
# second sees the first's change.
_LOCK_ACTIVE_ADMINS = Query(
    select(User.id)
    .where(User.user_type == UserType.ADMIN.value, User.is_active.is_(True))
    .order_by(User.id)
    .with_for_update()
)
_INSERT = Query(
    insert(User)
    .values(
        username=bindparam("username"),
        username_key=bindparam("key"),
        password_hash=bindparam("password_hash"),
        user_type=bindparam("user_type"),
        is_active=True,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(*ACCOUNT_COLUMNS)
)
# NULL means "leave as it is", so one statement serves every PATCH.
_UPDATE = Query(
    update(User)
    .where(User.id == bindparam("id"))
    .values(
        user_type=func.coalesce(bindparam("user_type", type_=String), User.user_type),
        is_active=func.coalesce(bindparam("is_active", type_=User.is_active.type), User.is_active),
        password_hash=func.coalesce(bindparam("password_hash", type_=String), User.password_hash),
        updated_at=bindparam("now"),
    )
    .returning(*ACCOUNT_COLUMNS)
)
_REHASH = Query(
    update(User)
    .where(User.id == bindparam("id"), User.password_hash == bindparam("old_hash"))
    .values(password_hash=bindparam("new_hash"), updated_at=bindparam("now"))
)
_DELETE = Query(sql_delete(User).where(User.id == bindparam("id")))


_ACCOUNT = TypeAdapter(Account)


def account_json(account: Account) -> dict[str, Any]:
    """*account* as the admin API shows a user (pydantic's JSON, as the API's ``UserOut``)."""
    body: dict[str, Any] = _ACCOUNT.dump_python(account, mode="json")
    return body


async def find_credentials(username: str) -> Row | None:
    """The row of the user called *username*, with its ``password_hash``, or ``None``."""
    # A name that breaks the username rule cannot exist, so it is not looked up: that
    # also keeps text no database can take (NUL, say) away from the query.
    if not valid_username(username):
        return None
    return await db.fetchrow(_FIND_BY_KEY, key=username_key(username))


async def find_user(username: str) -> Account | None:
    """The user called *username*, in any letter case."""
    row = await find_credentials(username)
    return None if row is None else Account.from_row(row)


async def get_user(user_id: int) -> Account | None:
    """The user with primary key *user_id*; an id beyond the column's range finds none."""
    if not 0 <= user_id <= MAX_ID:
        return None
    row = await db.fetchrow(_GET, id=user_id)
    return None if row is None else Account.from_row(row)


async def all_users() -> list[Account]:
    """Every user, oldest first."""
    return [Account.from_row(row) for row in await db.fetch(_ALL)]


async def user_page(limit: int, offset: int) -> tuple[list[Account], int]:
    """One page of users, oldest first, and how many users there are."""
    rows, total = await db.fetch_page(_PAGE, _COUNT, limit=limit, offset=offset)
    return [Account.from_row(row) for row in rows], total


async def insert_user(
    username: str, password_hash: str, user_type: UserType = UserType.USER
) -> Account:
    """Store a new user; raise ``InvalidUsernameError`` or ``UsernameTakenError``."""
    if not valid_username(username):
        raise InvalidUsernameError(username)
    try:
        async with logged_transaction() as connection:
            row = await connection.fetchrow(
                _INSERT,
                username=username.strip(),
                key=username_key(username),
                password_hash=password_hash,
                user_type=user_type.value,
                now=utcnow(),
            )
            assert row is not None  # INSERT ... RETURNING returns the row
            account = Account.from_row(row)
            await append_event(
                connection, user_id=None, kind=USER_CREATED, body=account_json(account)
            )
    except ConstraintViolation as error:
        raise UsernameTakenError(username) from error
    return account


async def replace_password_hash(user_id: int, old_hash: str, new_hash: str) -> bool:
    """Store *new_hash* for *user_id* unless the password was changed meanwhile."""
    return bool(
        await db.execute(_REHASH, id=user_id, old_hash=old_hash, new_hash=new_hash, now=utcnow())
    )


async def password_hash_of(user_id: int) -> str | None:
    """The stored password hash of *user_id*, or ``None`` for no such user."""
    row = await db.fetchrow(_PASSWORD_HASH, id=user_id)
    return row["password_hash"] if row else None


async def store_password_hash(
    account: Account, password_hash: str, *, keep_session: str | None = None
) -> None:
    """Change *account*'s password and end their other sessions, together."""
    async with logged_transaction() as connection:
        await connection.execute(
            _UPDATE,
            id=account.id,
            user_type=None,
            is_active=None,
            password_hash=password_hash,
            now=utcnow(),
        )
        await revoke_user_sessions(connection, account.id, keep=keep_session)


async def count_active_admins() -> int:
    """How many active admins exist."""
    row = await db.fetchrow(_COUNT_ACTIVE_ADMINS)
    return int(row["admins"]) if row else 0


async def _ensure_other_admin(connection: Connection, user_id: int) -> None:
    admins = {row["id"] for row in await connection.fetch(_LOCK_ACTIVE_ADMINS)}
    if admins == {user_id}:
        raise LastAdminError(user_id)


async def change_user(
    user_id: int,
    *,
    user_type: UserType | None = None,
    is_active: bool | None = None,
    password_hash: str | None = None,
) -> Account:
    """Apply an admin's changes to user *user_id*; return the changed account.

    Demotion, deactivation and a password reset all end the user's sessions, so the
    change holds from their very next request. Raises ``LastAdminError`` rather than
    leave the site without an active admin, ``UserNotFoundError`` for an unknown id.
    """
    if not 0 <= user_id <= MAX_ID:
        raise UserNotFoundError(user_id)
    losing_admin = (user_type is not None and user_type != UserType.ADMIN) or is_active is False
    async with logged_transaction() as connection:
        if losing_admin:
            await _ensure_other_admin(connection, user_id)
        row = await connection.fetchrow(
            _UPDATE,
            id=user_id,
            user_type=user_type.value if user_type is not None else None,
            is_active=is_active,
            password_hash=password_hash,
            now=utcnow(),
        )
        if row is None:
            raise UserNotFoundError(user_id)
        account = Account.from_row(row)
        await append_event(connection, user_id=None, kind=USER_UPDATED, body=account_json(account))
        if losing_admin or password_hash is not None:
            await revoke_user_sessions(connection, user_id)
    return account


async def delete_user(user_id: int) -> None:
    """Delete a user with their sessions and things; never the last active admin."""
    if not 0 <= user_id <= MAX_ID:
        raise UserNotFoundError(user_id)
    async with logged_transaction() as connection:
        await _ensure_other_admin(connection, user_id)
        if not await connection.execute(_DELETE, id=user_id):
            raise UserNotFoundError(user_id)
        await append_event(connection, user_id=None, kind=USER_DELETED, body={"id": user_id})
