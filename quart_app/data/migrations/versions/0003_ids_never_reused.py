"""Never reuse an id on SQLite: users and things get AUTOINCREMENT.

Without it SQLite gives a new row max(id) + 1, so after the newest thing is deleted
its id, and any stale Location naming it, goes to the next thing. PostgreSQL's
sequences never reuse an id: nothing changes there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Parents first is not needed: foreign keys are off during the rebuild (below).
TABLES = ("users", "things")


def _rebuild(autoincrement: bool) -> None:
    """Recreate each table (create, copy, drop, rename) with or without AUTOINCREMENT.

    Copying the rows with their ids seeds sqlite_sequence with the largest one, so the
    next id is above every id still stored. Ids deleted above it were never recorded.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    # Dropping users with foreign keys on would delete every session and thing.
    # migrate.migration_engine turns them off; refuse to run on any other connection.
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("rebuilding tables needs PRAGMA foreign_keys=OFF")
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
