"""The event log carries the admins' events too: events.user_id may be NULL.

An event with no user is for the admins' stream (a user created, changed or deleted),
so it outlives the user it is about. On SQLite the table is rebuilt (create, copy,
drop, rename), keeping AUTOINCREMENT and the largest id handed out so far: an id
handed out before the rebuild is never handed out again, even once pruned.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQUENCE = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"


def _user_id_nullable(nullable: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.alter_column("events", "user_id", nullable=nullable)
        return
    handed_out = bind.exec_driver_sql(_SEQUENCE).scalar()
    with op.batch_alter_table(
        "events", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.alter_column("user_id", nullable=nullable)
    # The copy seeds the rebuilt table's sequence with the largest id still stored,
    # which is below the one handed out when the newest events were pruned.
    copied = bind.exec_driver_sql(_SEQUENCE).scalar()
    largest = max(handed_out or 0, copied or 0)
    bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'events'")
    bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (largest,))


def upgrade() -> None:
    _user_id_nullable(True)


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE user_id IS NULL")
    _user_id_nullable(False)
