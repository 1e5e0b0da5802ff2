"""Alembic environment: runs on the connection ``quart_app.migrate`` hands over.

Run by hand (``alembic -c alembic.ini ...``, for new revisions), it connects to
``QUART_DATABASE_URL`` itself.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from quart_app.data.base import Base
from quart_app.data.migrate import check_foreign_keys, migration_engine
from quart_app.data.models import AuthSession, Thing, User  # noqa: F401 - registers the tables

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    """Migrate through *connection*, from ``migration_engine``.

    SQLite needs batch mode to alter tables.
    """
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Render UTCDateTime bare; script.py.mako imports it.
        user_module_prefix="",
    )
    with context.begin_transaction():
        before = context.get_context().get_current_heads()
        context.run_migrations()
        if context.get_context().get_current_heads() != before:
            # SQLite migrates with foreign keys off: check them before the commit.
            check_foreign_keys(connection)


async def run_standalone() -> None:
    engine = migration_engine(os.environ["QUART_DATABASE_URL"])
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on)
            await connection.commit()
    finally:
        await engine.dispose()


shared = config.attributes.get("connection")
if shared is not None:
    run_on(shared)
else:
    asyncio.run(run_standalone())
