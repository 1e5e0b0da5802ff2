"""Index things by (owner_id, id): the list query reads it in order, newest first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_things_owner_id_id", "things", ["owner_id", "id"])
    # The new index leads with owner_id, so it serves every lookup the old one did.
    op.drop_index("ix_things_owner_id", table_name="things")


def downgrade() -> None:
    op.create_index("ix_things_owner_id", "things", ["owner_id"])
    op.drop_index("ix_things_owner_id_id", table_name="things")
