"""The event log (quart_app/data/events.py): one event per change, with the change, in order."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from quart import Quart
from sqlalchemy import func, select, text, update

from quart_app.data.base import utcnow
from quart_app.data.events import append_event, events_after, logged_transaction, prune_events
from quart_app.data.models import Event, Thing, UserType
from tests.helpers.apps import Account, Client, add_user, make_app, signed_in_client, stored
from tests.helpers.services import reset_schema
from tests.helpers.waiting import eventually

_WAITING_FOR_AN_ADVISORY_LOCK = text(
    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def logged(app: Quart, user: Account) -> list[tuple[str, object]]:
    """*user*'s events as (kind, body), oldest first."""
    async with app.app_context():
        rows = await events_after(user.id, 0, 1000)
    return [(row.kind, json.loads(row.body)) for row in rows]


async def test_each_change_logs_one_event_with_the_answer_it_gave(
    app: Quart, user: Account, user_client: Client
) -> None:
    created = await user_client.post("/api/things", json={"title": "Buy milk"})
    thing = await created.get_json()
    updated = await user_client.patch(f"/api/things/{thing['id']}", json={"done": True})
    deleted = await user_client.delete(f"/api/things/{thing['id']}")
    assert [created.status_code, updated.status_code, deleted.status_code] == [201, 200, 204]
    assert await logged(app, user) == [
        ("thing.created", thing),
        ("thing.updated", await updated.get_json()),
        ("thing.deleted", {"id": thing["id"]}),
    ]


async def test_refused_changes_and_reads_log_nothing(
    app: Quart, user: Account, user_client: Client
) -> None:
    other = await add_user(app, "bob", "bob-password-1", UserType.USER)
    bobs = await signed_in_client(app, other)
    thing = await (await bobs.post("/api/things", json={"title": "Bob's"})).get_json()
    answers = [
        await user_client.patch(f"/api/things/{thing['id']}", json={"done": True}),
        await user_client.delete(f"/api/things/{thing['id']}"),
        await user_client.patch("/api/things/999999", json={"title": "nothing"}),
        await user_client.post("/api/things", json={"title": ""}),
        await user_client.get("/api/things"),
    ]
    assert [answer.status_code for answer in answers] == [404, 404, 404, 422, 200]
    assert await logged(app, user) == []
    # Bob's stream has his one change, and nobody else's.
    assert await logged(app, other) == [("thing.created", thing)]


async def test_a_change_whose_event_cannot_be_logged_is_not_made(
    app: Quart, user_client: Client
) -> None:
    # The event's insert fails inside the write's transaction: its table is gone.
    await stored(app, text("DROP TABLE events"))
    answer = await user_client.post("/api/things", json={"title": "Lost?"})
    assert answer.status_code == 500
    assert await stored(app, select(Thing.id)) == []


async def test_a_users_events_become_visible_in_id_order(postgres_url: str) -> None:
    """PostgreSQL hands out ids at insert, not at commit: without the log's lock a
    reader could see event 2 before event 1 commits, move past 1 and never see it.
    One user here; the lock is the log's, so the same holds across users."""
    await reset_schema(postgres_url)
    app = make_app(postgres_url)
    async with app.test_app():
        user = await add_user(app, "alice", "alice-password-1", UserType.USER)
        first_logged, finish_first = asyncio.Event(), asyncio.Event()

        async def first() -> None:
            async with app.app_context(), logged_transaction() as connection:
                await append_event(connection, user_id=user.id, kind="thing.created", body={})
                first_logged.set()
                await finish_first.wait()

        async def second() -> None:
            await first_logged.wait()
            async with app.app_context(), logged_transaction() as connection:
                await append_event(connection, user_id=user.id, kind="thing.updated", body={})

        async def second_waits_for_the_log_lock() -> bool:
            waiting = await stored(app, _WAITING_FOR_AN_ADVISORY_LOCK)
            return bool(waiting[0].n)

        first_task = asyncio.create_task(first())
        second_task = asyncio.create_task(second())
        await first_logged.wait()
        await eventually(
            lambda: second_task.done() or second_waits_for_the_log_lock(),
            within=10,
            what="the second append committed, or waiting for the first",
        )
        async with app.app_context():
            seen_meanwhile = [row.id for row in await events_after(user.id, 0, 10)]
        finish_first.set()
        await asyncio.gather(first_task, second_task)
        async with app.app_context():
            in_the_end = [row.id for row in await events_after(user.id, 0, 10)]
    assert len(in_the_end) == 2
    # What a reader saw was everything up to its newest id: nothing was skipped.
    assert seen_meanwhile == in_the_end[: len(seen_meanwhile)]


async def test_events_older_than_the_retention_are_pruned(
    app: Quart, user: Account, user_client: Client
) -> None:
    for title in ("old", "new"):
        assert (await user_client.post("/api/things", json={"title": title})).status_code == 201
    *older, newest = (row.id for row in await stored(app, select(Event.id).order_by(Event.id)))
    # user.created (the admins' stream), then the two things' events.
    assert len(older) == 2
    two_hours_ago = utcnow() - timedelta(hours=2)
    await stored(app, update(Event).where(Event.id != newest).values(created_at=two_hours_ago))
    async with app.app_context():
        assert await prune_events(retention=3600) == 2
    assert [row.id for row in await stored(app, select(Event.id))] == [newest]


async def test_the_newest_event_is_kept_whatever_its_age(
    app: Quart, user: Account, user_client: Client
) -> None:
    """It tells how far the log has gone, so a reconnecting client's Last-Event-ID can
    still be judged current or past the retention once every other event is pruned."""
    assert (await user_client.post("/api/things", json={"title": "a"})).status_code == 201
    newest = (await stored(app, select(func.max(Event.id).label("id"))))[0].id
    await stored(app, update(Event).values(created_at=utcnow() - timedelta(days=30)))
    async with app.app_context():
        assert await prune_events(retention=3600) == 1
        assert await prune_events(retention=3600) == 0
    assert [row.id for row in await stored(app, select(Event.id))] == [newest]


async def test_the_serving_app_prunes_events_on_its_own(database_url: str) -> None:
    await reset_schema(database_url)
    app = make_app(database_url, EVENT_PRUNE_INTERVAL=0.2, EVENT_RETENTION=0)
    async with app.test_app():
        alice = await add_user(app, "alice", "alice-password-1", UserType.USER)
        client = await signed_in_client(app, alice)
        for title in ("gone soon", "kept, as the newest"):
            assert (await client.post("/api/things", json={"title": title})).status_code == 201
        newest = (await stored(app, select(func.max(Event.id).label("id"))))[0].id
        await eventually(
            lambda: _only_event_left(app, newest),
            within=10,
            what="every event but the newest pruned",
        )
        # The things stay: only their events are past the retention.
        assert len(await stored(app, select(Thing.id))) == 2


async def _only_event_left(app: Quart, newest: int) -> bool:
    return [row.id for row in await stored(app, select(Event.id))] == [newest]


async def test_the_cli_prunes_events(database_url: str, app: Quart, user_client: Client) -> None:
    for title in ("a", "b"):
        assert (await user_client.post("/api/things", json={"title": title})).status_code == 201
    newest = (await stored(app, select(func.max(Event.id).label("id"))))[0].id
    # The command runs as it would from a timer: its own app, its own event loop.
    runner = make_app(database_url, EVENT_RETENTION=0).test_cli_runner()
    result = await asyncio.to_thread(runner.invoke, args=["prune-events"])
    assert result.exit_code == 0, result.output
    # alice's user.created and the first thing's event; the newest stays.
    assert "Deleted 2 events older than the retention." in result.output
    assert [row.id for row in await stored(app, select(Event.id))] == [newest]
