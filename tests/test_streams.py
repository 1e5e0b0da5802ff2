"""Live updates (web/api/streams.py, data/fanout.py): in-process streams, both backends."""

from __future__ import annotations

from quart import Quart

from tests.helpers.apps import Account, Client
from tests.helpers.sse import open_stream


async def test_a_change_reaches_the_users_open_stream(
    app: Quart, user: Account, user_client: Client
) -> None:
    async with open_stream(user_client) as stream:
        created = await user_client.post("/api/things", json={"title": "Buy milk"})
        event = await stream.next_event()
        assert stream.status == 200
        assert event.event == "thing.created"
        assert event.json == await created.get_json()
        assert stream.parser.retry == 2000
