"""Profile one route in-process (no server, no network) with cProfile.

.venv/bin/python -m bench.profile /api/status
.venv/bin/python -m bench.profile /api/things --token
.venv/bin/python -m bench.profile /api/things --token \
    --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/empty_database
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import tempfile
import time
from pathlib import Path

from quart import Quart
from sqlalchemy import bindparam, insert

from quart_app import create_app
from quart_app.data.base import utcnow
from quart_app.data.database import db
from quart_app.data.migrate import upgrade_database
from quart_app.data.models import Thing
from quart_app.data.statements import Query
from quart_app.security.credentials import authenticate, create_user
from quart_app.security.signing_in import issue_token

_ADD_THING = Query(
    insert(Thing).values(
        owner_id=bindparam("owner_id"),
        title=bindparam("title"),
        done=False,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
)


async def prepared_app(database_url: str) -> tuple[Quart, str]:
    os.environ.setdefault("QUART_SECRET_KEY", "profile-secret-key-" * 3)
    app = create_app({"DATABASE_URL": database_url, "RATE_LIMIT_ENABLED": False})
    async with app.app_context():
        await upgrade_database()
        await create_user("profile", "profile-password")
        verified = await authenticate("profile", "profile-password")
        assert verified is not None
        issued = await issue_token(verified)
        assert issued is not None
        for n in range(50):
            await db.execute(
                _ADD_THING, owner_id=verified.account.id, title=f"thing {n}", now=utcnow()
            )
        await db.close()
    return app, issued[0]


async def hammer(app: Quart, path: str, headers: dict[str, str], count: int) -> float:
    client = app.test_client()
    started = time.perf_counter()
    for _ in range(count):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, response.status_code
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--token", action="store_true", help="send the bearer token")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative", help="pstats sort key, e.g. tottime")
    parser.add_argument("--database-url", help="an empty database to use instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(scratch) / 'profile.sqlite3'}"
        loop = asyncio.new_event_loop()
        app, token = loop.run_until_complete(prepared_app(url))
        headers = {"Authorization": f"Bearer {token}"} if args.token else {}

        async def run() -> float:
            async with app.test_app():
                await hammer(app, args.path, headers, 200)  # warm up
                profiler.enable()
                seconds = await hammer(app, args.path, headers, args.count)
                profiler.disable()
                return seconds

        profiler = cProfile.Profile()
        seconds = loop.run_until_complete(run())
        loop.close()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(f"{args.count} requests to {args.path}: {args.count / seconds:.0f} req/s in-process")
    print(out.getvalue())


if __name__ == "__main__":
    main()
