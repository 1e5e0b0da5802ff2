"""``quart --app quart_app ...`` commands for the database and its users."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from quart import Quart, current_app
from quart.cli import ScriptInfo

from quart_app.data.accounts import (
    InvalidUsernameError,
    LastAdminError,
    UsernameTakenError,
    all_users,
    count_active_admins,
    find_user,
)
from quart_app.data.database import db
from quart_app.data.events import prune_events
from quart_app.data.migrate import upgrade_database
from quart_app.data.models import Account, UserType
from quart_app.data.session_store import prune_sessions
from quart_app.security.credentials import create_user, update_user

T = TypeVar("T")


def _run(work: Callable[[], Awaitable[T]]) -> T:
    """Run *work* inside the app context on a fresh event loop, then close the pool."""
    app: Quart = click.get_current_context().ensure_object(ScriptInfo).load_app()

    async def inner() -> T:
        async with app.app_context():
            try:
                return await work()
            finally:
                # The pool belongs to this short-lived loop.
                await db.close()

    return asyncio.run(inner())


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not 8 <= len(password) <= 256:
        raise click.ClickException("The password must be 8 to 256 characters long.")
    return password


async def _require_user(name: str) -> Account:
    user = await find_user(name)
    if user is None:
        raise click.ClickException(f"No user called {name!r}.")
    return user


@click.command("init-db")
def init_db_command() -> None:
    """Migrate the database to the current schema; with no admin, create user 'admin'.

    The admin's password is $ADMIN_PASSWORD, or a random one printed once.
    """

    async def work() -> None:
        await upgrade_database()
        if await count_active_admins():
            click.echo("Database ready.")
            return
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        await create_user("admin", password, UserType.ADMIN)
        if "ADMIN_PASSWORD" in os.environ:
            click.echo("Database ready. Created 'admin' with the password from $ADMIN_PASSWORD.")
        else:
            click.echo(f"Database ready. Created user 'admin' with password: {password}")
            click.echo("It is shown only this once.")

    _run(work)


@click.command("create-user")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(name: str, admin: bool, password_stdin: bool) -> None:
    """Create user NAME."""
    password = _read_password(password_stdin)

    async def work() -> None:
        user_type = UserType.ADMIN if admin else UserType.USER
        try:
            user = await create_user(name, password, user_type)
        except InvalidUsernameError as error:
            raise click.ClickException(
                "A username is 3 to 32 letters, digits, '_', '.' or '-'."
            ) from error
        except UsernameTakenError as error:
            raise click.ClickException(f"The username {name!r} is taken.") from error
        click.echo(f"Created {user.user_type} {user.username!r} (id {user.id}).")

    _run(work)


@click.command("list-users")
def list_users_command() -> None:
    """List every user."""

    async def work() -> None:
        for user in await all_users():
            state = "active" if user.is_active else "inactive"
            click.echo(f"{user.id}\t{user.username}\t{user.user_type}\t{state}")

    _run(work)


@click.command("set-user-type")
@click.argument("name")
@click.argument("user_type", type=click.Choice([kind.value for kind in UserType]))
def set_user_type_command(name: str, user_type: str) -> None:
    """Make user NAME an admin or a plain user."""

    async def work() -> None:
        user = await _require_user(name)
        try:
            user = await update_user(user.id, user_type=UserType(user_type))
        except LastAdminError as error:
            raise click.ClickException("This would leave no active admin.") from error
        click.echo(f"{user.username!r} is now {user.user_type}.")

    _run(work)


@click.command("deactivate-user")
@click.argument("name")
def deactivate_user_command(name: str) -> None:
    """Deactivate user NAME and end all their sessions."""

    async def work() -> None:
        user = await _require_user(name)
        try:
            await update_user(user.id, is_active=False)
        except LastAdminError as error:
            raise click.ClickException("This would leave no active admin.") from error
        click.echo(f"{user.username!r} is deactivated.")

    _run(work)


@click.command("prune-sessions")
def prune_sessions_command() -> None:
    """Delete expired and revoked sign-in sessions (the app also does so every hour)."""

    async def work() -> None:
        click.echo(f"Deleted {await prune_sessions()} expired or revoked sessions.")

    _run(work)


@click.command("prune-events")
def prune_events_command() -> None:
    """Delete the events older than EVENT_RETENTION (the app also does so every hour)."""

    async def work() -> None:
        pruned = await prune_events(float(current_app.config["EVENT_RETENTION"]))
        click.echo(f"Deleted {pruned} events older than the retention.")

    _run(work)


def init_app(app: Quart) -> None:
    """Register the commands on *app*'s CLI."""
    for command in (
        init_db_command,
        create_user_command,
        list_users_command,
        set_user_type_command,
        deactivate_user_command,
        prune_sessions_command,
        prune_events_command,
    ):
        app.cli.add_command(command)
