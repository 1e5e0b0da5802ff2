"""Live updates (web/api/streams.py, data/fanout.py): in-process streams, both backends."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, cast

import pytest
from quart import Quart
from quart.testing.connections import TestHTTPConnection as HTTPConnection
from sqlalchemy import func, select, text, update

from quart_app.data import events, fanout
from quart_app.data.base import utcnow
from quart_app.data.events import (
    NOTIFY_CHANNEL,
    THING_CREATED,
    append_event,
    logged_transaction,
    prune_events,
)
from quart_app.data.fanout import LISTENER_NAME, hub
from quart_app.data.models import AuthSession, Event, Thing, UserType
from tests.helpers.apps import (
    ADD_THING,
    Account,
    Client,
    add_user,
    bearer_headers,
    make_app,
    signed_in_client,
    stored,
)
from tests.helpers.cancelling import cancelled_at
from tests.helpers.services import reset_schema
from tests.helpers.sse import InProcessStream, open_stream
from tests.helpers.waiting import eventually

THINGS = "/api/things/events"
ADMINS = "/api/admin/events"


async def newest_event_id(app: Quart) -> int:
    rows = await stored(app, select(func.max(Event.id).label("id")))
    return int(rows[0].id or 0)


async def hub_caught_up(app: Quart) -> int:
    """Wait until the hub has read the newest event, where a new stream starts; return
    that id."""
    newest = await newest_event_id(app)

    async def read_it() -> bool:
        async with app.app_context():
            return hub().cursor == newest

    await eventually(read_it, within=5, what=f"the hub at event {newest}")
    return newest


async def open_streams(app: Quart, user_id: int | None = None) -> int:
    async with app.app_context():
        return hub().open_streams(user_id)


# --- what a stream shows ------------------------------------------------------------------


async def test_each_change_reaches_the_users_stream_as_the_rest_answer(
    app: Quart, user: Account, user_client: Client
) -> None:
    async with open_stream(user_client) as stream:
        await stream.started()
        assert stream.status == 200
        assert stream.connection.headers is not None
        assert stream.connection.headers["Content-Type"].startswith("text/event-stream")
        assert stream.connection.headers["Cache-Control"] == "no-store"
        assert stream.parser.retry == 2000
        created = await user_client.post("/api/things", json={"title": "Buy milk"})
        thing = await created.get_json()
        updated = await user_client.patch(f"/api/things/{thing['id']}", json={"done": True})
        deleted = await user_client.delete(f"/api/things/{thing['id']}")
        assert [created.status_code, updated.status_code, deleted.status_code] == [201, 200, 204]
        events = await stream.events(3)
    assert [(e.event, e.json) for e in events] == [
        ("thing.created", thing),
        ("thing.updated", await updated.get_json()),
        ("thing.deleted", {"id": thing["id"]}),
    ]
    # Each id is the event's id in the log, growing.
    ids = [int(e.id or 0) for e in events]
    assert ids == sorted(ids)
    assert ids[-1] == await newest_event_id(app)


async def test_a_bearer_token_opens_a_stream_too(
    app: Quart, user: Account, user_client: Client
) -> None:
    token = await bearer_headers(app.test_client(), user)
    async with open_stream(app.test_client(), headers=token) as stream:
        await stream.started()
        created = await user_client.post("/api/things", json={"title": "Via the cookie"})
        event = await stream.next_event()
    assert (event.event, event.json) == ("thing.created", await created.get_json())


async def test_a_stream_shows_only_its_users_changes(
    app: Quart, user: Account, user_client: Client
) -> None:
    bob = await signed_in_client(app, await add_user(app, "bob", "bob-password-1", UserType.USER))
    async with open_stream(user_client) as alices, open_stream(bob) as bobs:
        await alices.started()
        await bobs.started()
        await bob.post("/api/things", json={"title": "Bob's"})
        mine = await (await user_client.post("/api/things", json={"title": "Alice's"})).get_json()
        assert (await alices.next_event()).json == mine
        bobs_event = await bobs.next_event()
    assert bobs_event.json["title"] == "Bob's"


async def test_an_idle_stream_sends_keep_alive_comments(database_url: str) -> None:
    await reset_schema(database_url)
    app = make_app(database_url, EVENT_STREAM_KEEPALIVE=0.05)
    async with app.test_app():
        client = await signed_in_client(
            app, await add_user(app, "alice", "alice-password-1", UserType.USER)
        )
        async with open_stream(client) as stream:
            await stream.started()
            await stream.comments(2, within=5)
    assert stream.parser.comments[:2] == ["keep-alive", "keep-alive"]


# --- the status semantics, decided before the stream starts --------------------------------


@pytest.mark.parametrize("path", [THINGS, ADMINS])
async def test_without_credentials_a_stream_is_a_json_401(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.get_json())["error"]


async def test_a_revoked_token_gets_a_401(app: Quart, user: Account) -> None:
    client = app.test_client()
    token = await bearer_headers(client, user)
    assert (await client.delete("/api/tokens/current", headers=token)).status_code == 204
    response = await client.get(THINGS, headers=token)
    assert response.status_code == 401


async def test_the_admins_stream_is_a_json_403_for_a_plain_user(
    app: Quart, user: Account, user_client: Client
) -> None:
    response = await user_client.get(ADMINS)
    assert response.status_code == 403
    assert (await response.get_json())["error"] == "Admin access is required"
    assert "WWW-Authenticate" not in response.headers


async def test_past_the_per_user_cap_a_stream_is_a_429_until_one_closes(
    database_url: str,
) -> None:
    await reset_schema(database_url)
    app = make_app(database_url, EVENT_STREAMS_PER_USER=2)
    async with app.test_app():
        alice = await add_user(app, "alice", "alice-password-1", UserType.USER)
        bob = await add_user(app, "bob", "bob-password-1", UserType.USER)
        client = await signed_in_client(app, alice)
        async with AsyncExitStack() as stack:
            first = await stack.enter_async_context(open_stream(client))
            await first.started()
            async with open_stream(client) as second:
                await second.started()
                refused = await client.get(THINGS)
                assert refused.status_code == 429
                assert refused.headers["Retry-After"] == "5"
                assert (await refused.get_json())["error"] == "Too many open streams"
                # The cap is per user: bob still gets his.
                async with open_stream(await signed_in_client(app, bob)) as bobs:
                    await bobs.started()
            # One closed: the next one opens.
            await _wait_streams(app, alice.id, 1)
            async with open_stream(client) as again:
                await again.started()
                assert again.status == 200


async def _wait_streams(app: Quart, user_id: int, count: int) -> None:
    async def settled() -> bool:
        return await open_streams(app, user_id) == count

    await eventually(settled, within=5, what=f"{count} open stream(s)")


async def test_while_the_fan_out_engine_is_unreachable_a_stream_is_a_503(
    database_url: str,
) -> None:
    """Redis named but not answering: the stream would miss other processes' changes."""
    await reset_schema(database_url)
    app = make_app(database_url, EVENT_FANOUT="redis", EVENT_REDIS_URL="redis://127.0.0.1:1/0")
    async with app.test_app():
        client = await signed_in_client(
            app, await add_user(app, "alice", "alice-password-1", UserType.USER)
        )
        response = await client.get(THINGS)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert (await response.get_json())["error"] == "Live updates are unavailable"
        # The rest of the API is unaffected.
        assert (await client.post("/api/things", json={"title": "still"})).status_code == 201
        assert await open_streams(app) == 0


# --- no event lost: Last-Event-ID -----------------------------------------------------------


async def test_last_event_id_replays_every_missed_event_in_order_then_goes_live(
    app: Quart, user: Account, user_client: Client
) -> None:
    async with open_stream(user_client) as stream:
        await stream.started()
        await user_client.post("/api/things", json={"title": "seen"})
        seen = await stream.next_event()
    # Disconnected: three changes happen meanwhile.
    missed = [
        await (await user_client.post("/api/things", json={"title": f"missed {n}"})).get_json()
        for n in range(3)
    ]
    await user_client.patch(f"/api/things/{missed[0]['id']}", json={"done": True})
    headers = {"Last-Event-ID": str(seen.id)}
    async with open_stream(user_client, headers=headers) as stream:
        replayed = await stream.events(4)
        later = await (await user_client.post("/api/things", json={"title": "live"})).get_json()
        live = await stream.next_event()
    assert [e.json["title"] for e in replayed] == ["missed 0", "missed 1", "missed 2", "missed 0"]
    assert [e.event for e in replayed] == ["thing.created"] * 3 + ["thing.updated"]
    assert [e.json for e in replayed[:3]] == missed
    assert live.json == later
    ids = [int(e.id or 0) for e in [seen, *replayed, live]]
    assert ids == sorted(set(ids))


async def test_last_event_id_in_the_query_string_replays_too(
    app: Quart, user: Account, user_client: Client
) -> None:
    before = await newest_event_id(app)
    thing = await (await user_client.post("/api/things", json={"title": "missed"})).get_json()
    async with open_stream(user_client, f"{THINGS}?last_event_id={before}") as stream:
        event = await stream.next_event()
    assert (event.event, event.json) == ("thing.created", thing)


async def test_a_client_that_saw_everything_gets_nothing_twice(
    app: Quart, user: Account, user_client: Client
) -> None:
    await user_client.post("/api/things", json={"title": "old"})
    newest = await newest_event_id(app)
    async with open_stream(user_client, headers={"Last-Event-ID": str(newest)}) as stream:
        await stream.started()
        new = await (await user_client.post("/api/things", json={"title": "new"})).get_json()
        event = await stream.next_event()
    assert event.json == new


@pytest.mark.parametrize("last_id", ["banana", "-1", "1e9", "99999999"])
async def test_an_id_that_is_not_ours_gets_a_reset(
    app: Quart, user: Account, user_client: Client, last_id: str
) -> None:
    start = await hub_caught_up(app)
    async with open_stream(user_client, headers={"Last-Event-ID": last_id}) as stream:
        event = await stream.next_event()
        # The reset carries an id to resume from: changes after it come next.
        thing = await (await user_client.post("/api/things", json={"title": "after"})).get_json()
        after = await stream.next_event()
    assert (event.event, event.json) == ("reset", {})
    assert int(event.id or -1) == start
    assert after.json == thing


async def test_past_the_retention_a_reconnecting_client_gets_a_reset(
    app: Quart, user: Account, user_client: Client
) -> None:
    async with open_stream(user_client) as stream:
        await stream.started()
        await user_client.post("/api/things", json={"title": "seen"})
        seen = await stream.next_event()
    for n in range(2):
        await user_client.post("/api/things", json={"title": f"pruned {n}"})
    # A day passes: every event but the newest is pruned.
    await stored(app, update(Event).values(created_at=utcnow() - timedelta(days=2)))
    async with app.app_context():
        assert await prune_events(retention=86400) >= 2
    newest = await hub_caught_up(app)
    async with open_stream(user_client, headers={"Last-Event-ID": str(seen.id)}) as stream:
        event = await stream.next_event()
    assert event.event == "reset"
    assert int(event.id or 0) == newest


# --- the admins' stream ---------------------------------------------------------------------


async def test_the_admins_stream_shows_user_changes_as_the_admin_api(
    app: Quart, admin: Account, admin_client: Client
) -> None:
    async with open_stream(admin_client, ADMINS) as stream:
        await stream.started()
        created = await admin_client.post(
            "/api/admin/users", json={"username": "bob", "password": "bob-password-1"}
        )
        bob = await created.get_json()
        updated = await admin_client.patch(
            f"/api/admin/users/{bob['id']}", json={"is_active": False}
        )
        deleted = await admin_client.delete(f"/api/admin/users/{bob['id']}")
        assert [created.status_code, updated.status_code, deleted.status_code] == [201, 200, 204]
        events = await stream.events(3)
    assert [(e.event, e.json) for e in events] == [
        ("user.created", bob),
        ("user.updated", await updated.get_json()),
        ("user.deleted", {"id": bob["id"]}),
    ]


async def test_a_users_stream_shows_no_admin_or_access_events(
    app: Quart, user: Account, user_client: Client, admin_client: Client
) -> None:
    async with open_stream(user_client) as stream:
        await stream.started()
        await admin_client.post(
            "/api/admin/users", json={"username": "bob", "password": "bob-password-1"}
        )
        # alice signs in elsewhere and out again: her access changed, her stream stays.
        other = await signed_in_client(app, user)
        assert (await other.post("/api/logout")).status_code in {200, 204}
        thing = await (await user_client.post("/api/things", json={"title": "mine"})).get_json()
        event = await stream.next_event()
    assert (event.event, event.json) == ("thing.created", thing)


# --- revocation reaches open streams --------------------------------------------------------


async def _ends_revoked(stream: InProcessStream) -> list[Any]:
    rest = await stream.until_end(within=5)
    return [(e.event, e.json) for e in rest]


async def test_logging_out_ends_that_sessions_streams_and_only_those(
    app: Quart, user: Account, user_client: Client
) -> None:
    token = await bearer_headers(app.test_client(), user)
    token_client = app.test_client()
    async with (
        open_stream(user_client) as by_cookie,
        open_stream(token_client, headers=token) as by_token,
    ):
        await by_cookie.started()
        await by_token.started()
        # The cookie's session signs out, from another tab sharing the cookie.
        assert (await user_client.post("/api/logout")).status_code in {200, 204}
        assert await _ends_revoked(by_cookie) == [("end", {"reason": "revoked"})]
        # The token's stream goes on.
        created = await token_client.post("/api/things", json={"title": "x"}, headers=token)
        assert (await by_token.next_event()).json == await created.get_json()
    # The reconnect is refused.
    assert (await user_client.get(THINGS)).status_code == 401


async def _change_password(user: Account, user_client: Client, _admin: Client) -> int:
    new = {"current_password": user.password, "new_password": "a-whole-new-one"}
    return (await user_client.post("/api/me/password", json=new)).status_code


async def _deactivate(user: Account, _user_client: Client, admin_client: Client) -> int:
    deactivate = {"is_active": False}
    return (await admin_client.patch(f"/api/admin/users/{user.id}", json=deactivate)).status_code


async def _delete(user: Account, _user_client: Client, admin_client: Client) -> int:
    return (await admin_client.delete(f"/api/admin/users/{user.id}")).status_code


# How a user's other sign-ins end, and the status of the request that ends them.
REVOCATIONS = {
    "password change": (_change_password, 204),
    "deactivation": (_deactivate, 200),
    "deletion": (_delete, 204),
}


@pytest.mark.parametrize(("revoke", "status"), REVOCATIONS.values(), ids=REVOCATIONS)
async def test_a_revocation_ends_the_users_other_streams(
    app: Quart,
    user: Account,
    user_client: Client,
    admin_client: Client,
    revoke: Callable[[Account, Client, Client], Awaitable[int]],
    status: int,
) -> None:
    other = await signed_in_client(app, user)
    async with open_stream(other) as stream:
        await stream.started()
        assert await revoke(user, user_client, admin_client) == status
        assert await _ends_revoked(stream) == [("end", {"reason": "revoked"})]
    assert (await other.get(THINGS)).status_code == 401


async def test_demoting_an_admin_ends_their_admin_stream_and_the_reconnect_is_a_401(
    app: Quart, admin: Account, admin_client: Client
) -> None:
    other_admin = await add_user(app, "chief", "chief-password-1", UserType.ADMIN)
    chief = await signed_in_client(app, other_admin)
    async with open_stream(admin_client, ADMINS) as stream:
        await stream.started()
        response = await chief.patch(f"/api/admin/users/{admin.id}", json={"user_type": "user"})
        assert response.status_code == 200
        rest = await stream.until_end(within=5)
    # The demotion's own user.updated may still arrive (it commits with the
    # revocation, and the session check is a query); nothing after the end.
    assert (rest[-1].event, rest[-1].json) == ("end", {"reason": "revoked"})
    assert [e.event for e in rest[:-1]] in ([], ["user.updated"])
    # Demotion ends the sessions too: signed in again, the stream is a 403.
    assert (await admin_client.get(ADMINS)).status_code == 401
    again = await signed_in_client(app, admin)
    assert (await again.get(ADMINS)).status_code == 403


# --- shutting down --------------------------------------------------------------------------


async def test_draining_ends_every_stream_and_refuses_new_ones(
    app: Quart, user: Account, user_client: Client
) -> None:
    async with open_stream(user_client) as stream:
        await stream.started()
        async with app.app_context():
            hub().drain()
        assert await _ends_revoked(stream) == [("end", {"reason": "shutdown"})]
    response = await user_client.get(THINGS)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


async def test_every_stream_leaves_the_hub_when_its_client_hangs_up(
    app: Quart, user: Account, user_client: Client
) -> None:
    for _ in range(3):
        async with open_stream(user_client) as stream:
            await stream.started()
    await _wait_streams(app, user.id, 0)
    assert await open_streams(app) == 0
    # The events logged meanwhile are a JSON log, one per change.
    await user_client.post("/api/things", json={"title": "x"})
    rows = await stored(app, select(Event.kind, Event.body).where(Event.user_id == user.id))
    assert [(row.kind, json.loads(row.body)["title"]) for row in rows] == [("thing.created", "x")]


# --- bounded: a subscriber that stops reading -----------------------------------------------


async def test_a_subscriber_that_stops_reading_is_dropped_and_slows_no_one(
    database_url: str,
) -> None:
    """Its writes never complete, as when the client's and the kernel's buffers are full:
    past EVENT_STREAM_BUFFER events waiting, its stream ends and its connection closes,
    while the other streams get every event."""
    await reset_schema(database_url)
    app = make_app(database_url, EVENT_STREAM_BUFFER=4, EVENT_STREAMS_PER_USER=1)
    async with app.test_app():
        alice = await add_user(app, "alice", "alice-password-1", UserType.USER)
        bob = await add_user(app, "bob", "bob-password-1", UserType.USER)
        client, bobs_client = await signed_in_client(app, alice), await signed_in_client(app, bob)
        stalled = asyncio.Event()
        connection = client.request(THINGS)
        deliver = connection._asgi_send  # type: ignore[attr-defined]

        async def send_until_stalled(message: Any) -> None:
            if message["type"] == "http.response.body" and stalled.is_set():
                await asyncio.Event().wait()  # the write never completes
            await deliver(message)

        connection._asgi_send = send_until_stalled  # type: ignore[attr-defined]
        async with connection:
            await connection.send_complete()
            stuck = InProcessStream(cast(HTTPConnection, connection))
            await stuck.started()
            stalled.set()
            async with open_stream(await signed_in_client(app, alice)) as refused:
                with pytest.raises(AssertionError, match="refused: 429"):
                    await refused.started()
            async with open_stream(bobs_client) as bobs:
                await bobs.started()
                for n in range(8):
                    await client.post("/api/things", json={"title": f"alice {n}"})
                    his = await bobs_client.post("/api/things", json={"title": f"bob {n}"})
                    # Bob's stream keeps up, write by write.
                    assert (await bobs.next_event()).json == await his.get_json()
                # Dropped: the cap no longer counts it, and its answer has ended.
                await _wait_streams(app, alice.id, 0)
                async with asyncio.timeout(5):
                    await connection._task  # type: ignore[attr-defined]
            async with open_stream(await signed_in_client(app, alice)) as again:
                await again.started()


_CUT_THE_LISTENER = text(
    "SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity"
    " WHERE application_name = :name AND datname = current_database()"
)


async def test_a_lost_listen_connection_is_replaced_and_no_event_is_missed(
    postgres_url: str,
) -> None:
    """The server ends the LISTEN connection (a restart, a failover): once the hub
    listens again, the open stream gets every change made while it could not hear."""
    await reset_schema(postgres_url)
    app = make_app(postgres_url)
    async with app.test_app():
        alice = await add_user(app, "alice", "alice-password-1", UserType.USER)
        client = await signed_in_client(app, alice)
        async with open_stream(client) as stream:
            await stream.started()
            assert [
                row.cut for row in await stored(app, _CUT_THE_LISTENER, name=LISTENER_NAME)
            ] == [True]
            things = [
                await (await client.post("/api/things", json={"title": f"t{n}"})).get_json()
                for n in range(3)
            ]
            events = await stream.events(3, within=10)
        assert [e.json for e in events] == things
        # Listening again: a new stream opens.
        async with open_stream(client) as again:
            await again.started()


_NOTIFY = text("SELECT pg_notify(:channel, :payload) AS sent")


async def test_a_commit_is_read_from_the_log_once_by_its_own_process(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committing process reads the log as soon as its logged transaction ends;
    the NOTIFY it sent comes back to its own LISTEN too, and must not make it read the
    log a second time (it did for 3 writes in 4). Another process's NOTIFY is heard."""
    await reset_schema(postgres_url)
    app = make_app(postgres_url)
    reads: list[int] = []
    read_everyones_events = events.everyones_events_after

    async def counted(*args: Any, **kwargs: Any) -> list[Any]:
        reads.append(args[0])
        return await read_everyones_events(*args, **kwargs)

    def read_since(count: int) -> Callable[[], bool]:
        return lambda: len(reads) > count

    monkeypatch.setattr(fanout, "everyones_events_after", counted)
    async with app.test_app():
        alice = await add_user(app, "alice", "alice-password-1", UserType.USER)
        client = await signed_in_client(app, alice)

        async def listening() -> bool:
            async with app.app_context():
                return hub().engine_up

        await eventually(listening, what="the hub listening")
        per_write = []
        for n in range(10):
            await asyncio.sleep(0.2)  # any read of the sign-in or the last write is done
            before = len(reads)
            response = await client.post("/api/things", json={"title": f"t{n}"})
            assert response.status_code == 201
            await eventually(read_since(before), what="a read")
            # Its own NOTIFY arrives within milliseconds on this machine's loopback.
            await asyncio.sleep(0.2)
            per_write.append(len(reads) - before)
        assert per_write == [1] * 10
        before = len(reads)
        await stored(app, _NOTIFY, channel=NOTIFY_CHANNEL, payload="another process")
        await eventually(read_since(before), what="a read for another's NOTIFY")


async def test_a_logged_write_cancelled_at_any_await_reaches_the_stream_at_once(
    postgres_url: str,
) -> None:
    """A client hangs up while its logged write runs, at each await in turn. Where the
    write committed all the same, this process's streams show it at once, not at the
    next poll (5 s on PostgreSQL), though the hub reads at the end of its own
    transactions and skips their NOTIFY: it must not skip one whose end could not tell
    that it committed, since its read may have come first."""
    await reset_schema(postgres_url)
    app = make_app(postgres_url)
    committed_though_cancelled = 0
    async with app.test_app():
        alice = await add_user(app, "alice", "alice-password-1", UserType.USER)
        client = await signed_in_client(app, alice)
        async with open_stream(client) as stream:
            await stream.started()
            for k in itertools.count():
                title = f"cancelled at await {k}"

                async def write(title: str = title) -> None:
                    async with logged_transaction() as connection:
                        await connection.execute(ADD_THING, owner_id=alice.id, title=title)
                        body = {"title": title}
                        await append_event(
                            connection, user_id=alice.id, kind=THING_CREATED, body=body
                        )

                async with app.app_context():
                    cancelled = await cancelled_at(write, k)
                if await stored(app, select(Thing.id).where(Thing.title == title)):
                    event = await stream.next_event(within=2)
                    assert event.json == {"title": title}, f"cancelled at await {k}"
                    committed_though_cancelled += cancelled
                if not cancelled:
                    break
                assert k < 50, "the write never finished"
    assert committed_though_cancelled >= 1, "no cancellation came after the commit"


async def test_head_answers_as_get_would_start_and_opens_no_stream(
    app: Quart, user: Account, user_client: Client, client: Client
) -> None:
    async with asyncio.timeout(5):
        response = await user_client.head(THINGS)
        anonymous = await client.head(THINGS)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert await response.get_data() == b""
    assert anonymous.status_code == 401
    assert await open_streams(app) == 0


async def test_a_stream_whose_body_never_starts_leaves_the_hub(
    app: Quart, user: Account, user_client: Client
) -> None:
    """The client hangs up between the view's answer and its first byte: the body's
    generator never runs, and the stream must not keep a place under the cap."""
    connection = user_client.request(THINGS)
    deliver = connection._asgi_send  # type: ignore[attr-defined]

    async def hang_up_at_the_start(message: Any) -> None:
        if message["type"] == "http.response.start":
            raise asyncio.CancelledError  # as when the connection is gone
        await deliver(message)

    connection._asgi_send = hang_up_at_the_start  # type: ignore[attr-defined]
    with contextlib.suppress(asyncio.CancelledError):
        async with connection:
            await connection.send_complete()
    gc.collect()
    await _wait_streams(app, user.id, 0)


async def test_a_new_stream_says_where_it_starts_so_a_drop_before_any_event_loses_nothing(
    app: Quart, user: Account, user_client: Client
) -> None:
    await user_client.post("/api/things", json={"title": "before"})
    newest = await hub_caught_up(app)
    async with open_stream(user_client) as stream:
        await stream.started()
        start = stream.parser.last_id
    assert start == str(newest)
    # The stream dropped before any event; a change happens meanwhile.
    missed = await (await user_client.post("/api/things", json={"title": "away"})).get_json()
    async with open_stream(user_client, headers={"Last-Event-ID": start}) as stream:
        event = await stream.next_event()
    assert event.json == missed


async def test_a_sign_in_that_expires_ends_its_stream_at_the_next_check(
    database_url: str,
) -> None:
    """No event announces an expiry: an idle stream checks its session every
    EVENT_STREAM_RECHECK seconds."""
    await reset_schema(database_url)
    app = make_app(database_url, EVENT_STREAM_KEEPALIVE=0.05, EVENT_STREAM_RECHECK=0.1)
    async with app.test_app():
        client = await signed_in_client(
            app, await add_user(app, "alice", "alice-password-1", UserType.USER)
        )
        async with open_stream(client) as stream:
            await stream.started()
            await stored(app, update(AuthSession).values(expires_at=utcnow()))
            assert await _ends_revoked(stream) == [("end", {"reason": "revoked"})]
