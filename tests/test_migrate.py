"""Alembic migrations: any database, empty, older or pre-Alembic, reaches the current schema."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from http.cookiejar import CookieJar
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from quart import Quart
from sqlalchemy import delete, insert, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from quart_app.data.base import Base, utcnow
from quart_app.data.database import build_engine
from quart_app.data.migrate import (
    ForeignKeysBroken,
    alembic_config,
    current_revision,
    migration_engine,
    upgrade_database,
)
from quart_app.data.models import AuthSession, Thing, User, UserType
from quart_app.data.usernames import username_key
from quart_app.security.passwords import passwords
from tests.helpers.apps import (
    ADMIN_PASSWORD,
    USER_PASSWORD,
    Account,
    Client,
    bearer_headers,
    browser_client,
    create_thing,
    make_app,
    signed_in_client,
    stored,
)
from tests.helpers.services import reset_schema

HEAD = "0005"
# The tables whose rows every migration must keep, with a column that orders them.
TABLES = {"users": "id", "auth_sessions": "id_hash", "things": "id"}


@pytest.fixture
def empty_app(database_url: str) -> Quart:
    asyncio.run(reset_schema(database_url, create=False))
    return make_app(database_url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A SQLAlchemy engine on the test database, to look at what the migrations made."""
    engine = build_engine(database_url)
    yield engine
    await engine.dispose()


def differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def things_indexes(connection: Connection) -> set[str]:
    return {index["name"] for index in inspect(connection).get_indexes("things") if index["name"]}


async def test_an_empty_database_migrates_to_exactly_the_models(
    empty_app: Quart, engine: AsyncEngine
) -> None:
    async with empty_app.app_context():
        assert await current_revision() is None
        await upgrade_database()
        assert await current_revision() == HEAD
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []


async def test_upgrading_from_the_first_revision_keeps_the_data(
    empty_app: Quart, engine: AsyncEngine
) -> None:
    async with empty_app.app_context():
        await upgrade_database("0001")
        async with engine.begin() as connection:
            assert "ix_things_owner_id" in await connection.run_sync(things_indexes)
            await connection.execute(
                text(
                    "INSERT INTO users (id, username, username_key, password_hash, user_type,"
                    " is_active, created_at, updated_at) VALUES (7, 'Old', 'old', 'x', 'user',"
                    " true, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO things (owner_id, title, done, created_at, updated_at)"
                    " VALUES (7, 'kept', false, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
        await upgrade_database()
        assert await current_revision() == HEAD
        async with engine.connect() as connection:
            indexes = await connection.run_sync(things_indexes)
            titles = (await connection.execute(text("SELECT title FROM things"))).scalars().all()
            assert await connection.run_sync(differences) == []
    assert "ix_things_owner_id_id" in indexes
    assert "ix_things_owner_id" not in indexes
    assert titles == ["kept"]


async def test_a_database_made_before_migrations_is_adopted(
    database_url: str, engine: AsyncEngine
) -> None:
    # reset_schema builds the tables with create_all, as init-db did before Alembic.
    await reset_schema(database_url)
    app = make_app(database_url)
    async with app.app_context():
        async with engine.begin() as connection:
            await connection.execute(text("DROP INDEX ix_things_owner_id_id"))
            await connection.execute(text("CREATE INDEX ix_things_owner_id ON things (owner_id)"))
            # A table of a later migration (0004): create_all back then did not make it.
            await connection.execute(text("DROP TABLE events"))
        await upgrade_database()
        assert await current_revision() == HEAD
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []


async def test_upgrading_twice_changes_nothing(empty_app: Quart) -> None:
    async with empty_app.app_context():
        await upgrade_database()
        await upgrade_database()
        assert await current_revision() == HEAD


# --- 0003: ids never reused (AUTOINCREMENT on SQLite) ---------------------------------


@dataclass
class OldDatabase:
    """What users held in a database at revision 0002: sign-ins, and the ids handed out."""

    cookies: CookieJar  # alice's browser
    token_headers: dict[str, str]  # alice's bearer token
    admin_cookies: CookieJar
    thing_ids: list[int]  # alice's things, oldest first; the 2nd and the newest deleted


async def every_row(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of every table, as the database returns it."""
    async with engine.connect() as connection:
        return {
            table: [
                tuple(row)
                for row in await connection.execute(
                    text(f"SELECT * FROM {table} ORDER BY {order}")  # noqa: S608 - constants
                )
            ]
            for table, order in TABLES.items()
        }


async def downgrade_database(database_url: str, revision: str) -> None:
    """Downgrade to *revision* the way init-db upgrades: one transaction."""
    engine = migration_engine(database_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(
                lambda sync: command.downgrade(alembic_config(sync), revision)
            )
            await connection.commit()
    finally:
        await engine.dispose()


def holding(app: Quart, cookies: CookieJar) -> Client:
    """A browser on *app* that holds *cookies*."""
    client = browser_client(app)
    client.cookie_jar = cookies
    return client


def cookies_of(client: Client) -> CookieJar:
    assert client.cookie_jar is not None
    return client.cookie_jar


_OLD_INSERT = (
    insert(Thing).values(done=False, created_at=utcnow(), updated_at=utcnow()).returning(Thing.id)
)


async def old_user(app: Quart, username: str, password: str, user_type: UserType) -> Account:
    """A user stored as the app of revision 0002 stored one (today's also logs it)."""
    async with app.app_context():
        password_hash = await passwords.hash(password)
    row = (
        await stored(
            app,
            insert(User)
            .values(
                username=username,
                username_key=username_key(username),
                password_hash=password_hash,
                user_type=user_type.value,
                is_active=True,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            .returning(User.id),
        )
    )[0]
    return Account(row.id, username, password)


@pytest.fixture
async def old_database(empty_app: Quart) -> OldDatabase:
    async with empty_app.app_context():
        await upgrade_database("0002")
    async with empty_app.test_app():
        admin = await old_user(empty_app, "root", ADMIN_PASSWORD, UserType.ADMIN)
        alice = await old_user(empty_app, "alice", USER_PASSWORD, UserType.USER)
        browser = await signed_in_client(empty_app, alice)
        # Written as the app of revision 0002 wrote them: today's API also logs each
        # change in the events table (0004), which this database does not have yet.
        thing_ids = [
            (await stored(empty_app, _OLD_INSERT.values(owner_id=alice.id, title=f"thing {n}")))[
                0
            ].id
            for n in range(4)
        ]
        for deleted in (thing_ids[1], thing_ids[-1]):
            await stored(empty_app, delete(Thing).where(Thing.id == deleted))
        return OldDatabase(
            cookies=cookies_of(browser),
            token_headers=await bearer_headers(empty_app.test_client(), alice),
            admin_cookies=cookies_of(await signed_in_client(empty_app, admin)),
            thing_ids=thing_ids,
        )


@pytest.fixture
async def upgraded_app(old_database: OldDatabase, database_url: str) -> AsyncIterator[Quart]:
    """The app started again on *old_database*, upgraded to the newest revision."""
    app = make_app(database_url)
    async with app.app_context():
        await upgrade_database()
    async with app.test_app():
        yield app


async def test_the_upgrade_keeps_every_row_unchanged(
    old_database: OldDatabase, empty_app: Quart, engine: AsyncEngine
) -> None:
    before = await every_row(engine)
    assert {table: len(rows) for table, rows in before.items()} == {
        "users": 2,
        "auth_sessions": 3,
        "things": 2,
    }
    async with empty_app.app_context():
        await upgrade_database()
        assert await current_revision() == HEAD
    assert await every_row(engine) == before
    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_sessions_made_before_the_upgrade_still_sign_in(
    old_database: OldDatabase, upgraded_app: Quart
) -> None:
    things = await holding(upgraded_app, old_database.cookies).get("/api/things")
    assert things.status_code == 200
    titles = [item["title"] for item in (await things.get_json())["items"]]
    assert titles == ["thing 2", "thing 0"]
    me = await upgraded_app.test_client().get("/api/me", headers=old_database.token_headers)
    assert me.status_code == 200
    assert (await me.get_json())["user"]["username"] == "alice"


async def test_after_the_upgrade_ids_are_never_reused(
    old_database: OldDatabase, upgraded_app: Quart
) -> None:
    alice = holding(upgraded_app, old_database.cookies)
    newest_stored = old_database.thing_ids[2]
    assert (await alice.delete(f"/api/things/{newest_stored}")).status_code == 204
    # The newest thing of all was deleted before the upgrade, when SQLite kept no record
    # of its id: the migration can only start the sequence at the largest id stored.
    first = await create_thing(alice, "after the upgrade")
    assert first > newest_stored
    assert (await alice.delete(f"/api/things/{first}")).status_code == 204
    assert await create_thing(alice, "after a delete") > first


async def test_after_the_upgrade_deleting_a_user_still_deletes_their_rows(
    old_database: OldDatabase, upgraded_app: Quart
) -> None:
    # The rebuilt tables still cascade from users.
    alice = (await stored(upgraded_app, select(Thing.owner_id)))[0]["owner_id"]
    admin = holding(upgraded_app, old_database.admin_cookies)
    admin_id = (await (await admin.get("/api/me")).get_json())["user"]["id"]
    assert (await admin.delete(f"/api/admin/users/{alice}")).status_code == 204
    assert await stored(upgraded_app, select(Thing.id)) == []
    owners = await stored(upgraded_app, select(AuthSession.user_id).distinct())
    assert [row["user_id"] for row in owners] == [admin_id]
    alice_browser = holding(upgraded_app, old_database.cookies)
    assert (await alice_browser.get("/api/things")).status_code == 401


async def test_downgrading_and_upgrading_again_keeps_every_row(
    old_database: OldDatabase, empty_app: Quart, database_url: str, engine: AsyncEngine
) -> None:
    before = await every_row(engine)
    async with empty_app.app_context():
        await upgrade_database()
        await downgrade_database(database_url, "0002")
        assert await current_revision() == "0002"
        assert await every_row(engine) == before
        await upgrade_database()
        assert await current_revision() == HEAD
    assert await every_row(engine) == before


def sqlite_schema(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


async def test_a_migration_that_leaves_broken_foreign_keys_commits_nothing(
    tmp_path: Path,
) -> None:
    # Foreign keys are off while SQLite migrates; the check before the commit stands in.
    path = tmp_path / "orphan.sqlite3"
    app = make_app(f"sqlite+aiosqlite:///{path}")
    async with app.app_context():
        await upgrade_database("0002")
    # Foreign keys off (sqlite3's default) let the orphan in; the connection commits it.
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "INSERT INTO things (owner_id, title, done, created_at, updated_at)"
            " VALUES (99, 'orphan', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    schema = sqlite_schema(path)
    async with app.app_context():
        with pytest.raises(ForeignKeysBroken, match="things"):
            await upgrade_database()
        assert await current_revision() == "0002"
    assert sqlite_schema(path) == schema


def test_the_migration_template_imports_what_it_renders() -> None:
    """A migration written by ``alembic revision`` imports the app's column types."""
    template = (files("quart_app.data") / "migrations" / "script.py.mako").read_text()
    imports = [line for line in template.splitlines() if line.startswith("from quart_app")]
    assert imports
    for line in imports:
        exec(line.split("#")[0], {})  # noqa: S102 - the template's own import lines
