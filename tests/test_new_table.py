"""docs/architecture.md, "A table", followed for real: a model with defaults, its
migration by autogenerate, its queries and a route, on both backends.

The table is defined here, on a metadata of its own, so the project's models (which
tests/test_migrate.py holds equal to the migrations) stay as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import pytest
import sqlalchemy
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from pydantic import BaseModel, ConfigDict
from quart import Blueprint, Quart
from quart_schema import validate_request
from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    MetaData,
    String,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from quart_app.data.base import Base, UTCDateTime, utcnow
from quart_app.data.database import build_engine, db
from quart_app.data.migrate import upgrade_database
from quart_app.data.models import NEVER_REUSE_IDS, User, UserType
from quart_app.data.statements import Query
from quart_app.security.access import signed_in
from quart_app.security.auth import current_user
from quart_app.web.schemas import Strict
from tests.helpers.apps import USER_PASSWORD, Client, add_user, make_app, signed_in_client
from tests.helpers.services import reset_schema


class NotesBase(DeclarativeBase):
    """Stands in for ``quart_app.data.base.Base``: the same naming convention, its own tables."""

    metadata = MetaData(naming_convention=Base.metadata.naming_convention)


# Step 1: the model.
class Note(NotesBase):
    __tablename__ = "notes"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey(User.id, ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(String(500))
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# Step 3: the queries, built once, with the row type they return.
NOTE_COLUMNS = (Note.id, Note.text, Note.pinned, Note.created_at, Note.updated_at)


@dataclass(frozen=True)
class NoteRow:
    id: int
    text: str
    pinned: bool
    created_at: datetime
    updated_at: datetime


ADD_NOTE = Query(
    insert(Note)
    .values(owner_id=bindparam("owner_id"), text=bindparam("text"))
    .returning(*NOTE_COLUMNS),
    into=NoteRow,
)
NOTES_OF = Query(
    select(*NOTE_COLUMNS).where(Note.owner_id == bindparam("owner_id")).order_by(Note.id),
    into=NoteRow,
)
PIN_NOTE = Query(
    update(Note)
    .where(Note.id == bindparam("note_id"), Note.owner_id == bindparam("owner_id"))
    .values(pinned=True)
    .returning(*NOTE_COLUMNS),
    into=NoteRow,
)


# Step 4: the route.
class NoteCreate(Strict):
    text: str


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    text: str
    pinned: bool
    created_at: datetime
    updated_at: datetime


bp = Blueprint("notes", __name__, url_prefix="/api/notes")


def _owner_id() -> int:
    assert current_user.account is not None
    return current_user.account.id


@bp.post("")
@signed_in
@validate_request(NoteCreate)
async def add_note(data: NoteCreate) -> tuple[dict[str, object], int]:
    note = await db.fetchrow(ADD_NOTE, owner_id=_owner_id(), text=data.text)
    assert note is not None
    return NoteOut.model_validate(note).model_dump(mode="json"), 201


@bp.get("")
@signed_in
async def list_notes() -> dict[str, object]:
    notes = await db.fetch(NOTES_OF, owner_id=_owner_id())
    return {"items": [NoteOut.model_validate(note).model_dump(mode="json") for note in notes]}


@bp.post("/<int:note_id>/pin")
@signed_in
async def pin_note(note_id: int) -> tuple[dict[str, object], int]:
    # Two statements that must hold together; the read runs on the transaction's
    # connection, so it sees the pin.
    async with db.transaction() as connection:
        pinned = await connection.fetchrow(PIN_NOTE, note_id=note_id, owner_id=_owner_id())
        if pinned is None:
            return {"error": "Note not found"}, 404
        notes = await db.fetch(NOTES_OF, owner_id=_owner_id())
    return {"pinned": sum(note.pinned for note in notes)}, 200


# Step 2: the migration, as `alembic revision --autogenerate` writes it (migrations/env.py
# renders the project's own types without a module prefix) and `init-db` runs it.
def _autogenerate_and_upgrade(connection: Connection) -> str:
    """The upgrade Alembic writes for the models plus ``notes``; applied, then returned."""
    models = MetaData(naming_convention=Base.metadata.naming_convention)
    for source in (Base.metadata, NotesBase.metadata):
        for model_table in source.tables.values():
            model_table.to_metadata(models)
    context = MigrationContext.configure(connection)
    upgrade_ops = produce_migrations(context, models).upgrade_ops
    assert upgrade_ops is not None
    # Rendered for a migration's upgrade() body: every line but the first indented.
    code = "\n".join(
        line.strip() for line in render_python_code(upgrade_ops, user_module_prefix="").splitlines()
    )
    exec(code, {"op": Operations(context), "sa": sqlalchemy, "UTCDateTime": UTCDateTime})  # noqa: S102
    return code


async def _drop_notes(database_url: str) -> None:
    """Drop the table made here, which the shared schema reset does not know of."""
    engine = build_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(NotesBase.metadata.drop_all)
    finally:
        await engine.dispose()


@pytest.fixture
async def notes_app(database_url: str) -> AsyncIterator[Quart]:
    await _drop_notes(database_url)
    await reset_schema(database_url, create=False)
    app = make_app(database_url)
    app.register_blueprint(bp)
    try:
        async with app.test_app():
            async with app.app_context():
                await upgrade_database()
            engine = build_engine(database_url)
            try:
                async with engine.begin() as connection:
                    migration = await connection.run_sync(_autogenerate_and_upgrade)
            finally:
                await engine.dispose()
            # Only the new table: the project's own migrations already match its models.
            assert "op.create_table('notes'" in migration, migration
            assert "drop" not in migration, migration
            yield app
    finally:
        await _drop_notes(database_url)


@pytest.fixture
async def notes_client(notes_app: Quart) -> Client:
    user = await add_user(notes_app, "writer", USER_PASSWORD, UserType.USER)
    return await signed_in_client(notes_app, user)


async def test_a_new_table_works_through_its_route(notes_client: Client) -> None:
    created = await notes_client.post("/api/notes", json={"text": "buy milk"})
    assert created.status_code == 201
    note = await created.get_json()
    assert note["text"] == "buy milk"
    assert note["pinned"] is False  # the model's default
    assert note["created_at"] <= note["updated_at"]  # each default called, as SQLAlchemy does

    pinned = await notes_client.post(f"/api/notes/{note['id']}/pin")
    assert pinned.status_code == 200
    assert await pinned.get_json() == {"pinned": 1}

    listed = await notes_client.get("/api/notes")
    (stored,) = (await listed.get_json())["items"]
    assert stored["pinned"] is True
    assert stored["created_at"] == note["created_at"]
    assert stored["updated_at"] > note["updated_at"]  # the model's onupdate

    assert (await notes_client.post("/api/notes/999/pin")).status_code == 404
    invalid = await notes_client.post("/api/notes", json={"text": "x", "colour": "red"})
    assert invalid.status_code == 422
    assert len((await (await notes_client.get("/api/notes")).get_json())["items"]) == 1
