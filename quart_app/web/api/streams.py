"""Live updates over Server-Sent Events: the user's things, and the admins' users.

Every refusal is decided before the stream starts, so it is the usual JSON answer:
401 (and 403 on the admins' stream) from the access decorators, 429 past the per-user
cap on open streams, 503 while the event log or the fan-out engine is out of reach.
Once started, a stream sends ``retry:``, then what the client missed (from
``Last-Event-ID``), then each change as it commits (``data/fanout.py``), with a comment
line when it has been quiet for ``EVENT_STREAM_KEEPALIVE`` seconds.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncGenerator

from quart import Blueprint, Quart, Response, current_app, request
from quart.typing import ResponseReturnValue

from quart_app.data.events import events_after, log_bounds
from quart_app.data.fanout import (
    ENDED_OVERFLOW,
    ENDED_REVOKED,
    Delivery,
    Stream,
    StreamRefused,
    hub,
    still_allowed,
)
from quart_app.http.api_errors import json_error
from quart_app.http.declared import errors, event_stream
from quart_app.http.draining import when_draining
from quart_app.security.access import admin_required, signed_in
from quart_app.security.auth import current_user

bp = Blueprint("streams", __name__)

# Replayed events read per round trip.
_REPLAY_BATCH = 500
_CONTENT_TYPE = "text/event-stream; charset=utf-8"
_HEADERS = {
    # Never stored: each connection is its own stream.
    "Cache-Control": "no-store",
    # nginx passes each event on at once instead of buffering the answer.
    "X-Accel-Buffering": "no",
}


@bp.get("/things/events")
@signed_in
@errors(429)
@event_stream
async def thing_events() -> ResponseReturnValue:
    """The signed-in user's changes to their things, live: ``thing.created``,
    ``thing.updated`` (each with the thing's JSON, as the REST answers) and
    ``thing.deleted`` (``{"id": ...}``). ``Last-Event-ID`` replays what was missed;
    a ``reset`` event means the client must reload the list."""
    assert current_user.account is not None
    return await _open_stream(audience=current_user.account.id, admin=False)


@bp.get("/admin/events")
@admin_required
@errors(429)
@event_stream
async def admin_events() -> ResponseReturnValue:
    """Changes to users, live, for admins: ``user.created`` and ``user.updated`` (each
    with the user's JSON, as ``/api/admin/users`` answers) and ``user.deleted``
    (``{"id": ...}``). ``Last-Event-ID`` replays what was missed, as on the things'
    stream."""
    return await _open_stream(audience=None, admin=True)


def _last_event_id() -> int | str | None:
    """The client's ``Last-Event-ID`` (or ``?last_event_id=``): an id, ``None`` when
    absent, or ``"bad"`` for a value that is no id of ours."""
    value = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        return "bad"
    return int(value)


async def _open_stream(*, audience: int | None, admin: bool) -> ResponseReturnValue:
    account = current_user.account
    assert account is not None
    assert current_user.auth_id is not None
    live = hub()
    await live.wait_available()
    try:
        if request.method == "HEAD":
            # The answer a GET would start with, and no stream: nothing would read it.
            live.check_room(account.id)
            return Response("", content_type=_CONTENT_TYPE, headers=_HEADERS)
        stream = live.join(
            user_id=account.id,
            audience=audience,
            session_id=current_user.auth_id,
            session_kind=current_user.kind,
            admin=admin,
        )
    except StreamRefused as refusal:
        body, status, headers = json_error(refusal.message, refusal.status)
        return body, status, {**headers, "Retry-After": str(refusal.retry_after)}
    last_id = _last_event_id()
    try:
        first = await _replay_start(stream, last_id)
    except BaseException:
        live.leave(stream)
        raise
    frames = _frames(live.app, stream, first, resumed=last_id is not None)
    # A client that hangs up before the body starts leaves a generator that never runs
    # (nor its finally): the stream leaves the hub when the generator is collected.
    weakref.finalize(frames, live.leave, stream)
    response = Response(
        frames,
        content_type=_CONTENT_TYPE,
        headers=_HEADERS,
    )
    # A stream lasts as long as its client, not RESPONSE_TIMEOUT.
    response.timeout = None
    return response


async def _replay_start(stream: Stream, last_id: int | str | None) -> list[str]:
    """The frames to send first: a ``reset`` when *last_id* is not a replayable id,
    else the first events the client missed (the rest follow in ``_frames``).

    Read before the answer starts, so a database out of reach is a 503, not a stream
    that ends at once.
    """
    if last_id is None:
        return []
    oldest, newest = await log_bounds()
    if not isinstance(last_id, int) or last_id > newest:
        return [_reset(stream)]
    if last_id < oldest - 1:
        # Events after last_id were pruned (EVENT_RETENTION): the client cannot catch
        # up event by event, so it must reload.
        return [_reset(stream)]
    # Events up to the hub's cursor come from the log, later ones from the hub; an
    # event in both is sent once (Stream.next_batch skips ids up to stream.sent).
    stream.sent = last_id
    return await _replay_batch(stream)


def _reset(stream: Stream) -> str:
    return _frame(Delivery(stream.sent, "reset", "{}"))


async def _replay_batch(stream: Stream) -> list[str]:
    """Up to one batch of the events after ``stream.sent`` that the stream shows; ``[]``
    once caught up. Moves ``stream.sent`` past every event read."""
    rows = await events_after(stream.audience, stream.sent, _REPLAY_BATCH)
    frames = []
    for row in rows:
        stream.sent = row.id
        if row.kind in stream.kinds:
            frames.append(_frame(Delivery(row.id, row.kind, row.body)))
    if rows and not frames:
        # Only events this stream does not show: read on.
        return await _replay_batch(stream)
    return frames


def _frame(delivery: Delivery) -> str:
    return f"id: {delivery.id}\nevent: {delivery.kind}\ndata: {delivery.body}\n\n"


async def _frames(
    app: Quart, stream: Stream, first: list[str], *, resumed: bool
) -> AsyncGenerator[str, None]:
    # An app context (for the database), not the request's: a stream holds it for as
    # long as it is open, and the request context is larger.
    async with app.app_context():
        config = current_app.config
        keepalive = float(config["EVENT_STREAM_KEEPALIVE"])
        recheck = float(config["EVENT_STREAM_RECHECK"])
        live = stream.hub
        stream.task = asyncio.current_task()
        checked = time.monotonic()
        try:
            retry = f"retry: {int(float(config['EVENT_STREAM_RETRY']) * 1000)}\n"
            # A new stream says where it starts: its id becomes EventSource's Last-Event-ID
            # (without an event), so a drop before the first event loses nothing either.
            yield retry + ("" if resumed else f"id: {stream.sent}\n") + "\n"
            if first:
                yield "".join(first)
                while batch := await _replay_batch(stream):
                    yield "".join(batch)
            while True:
                deliveries = await stream.next_batch(keepalive)
                if deliveries is None:
                    if stream.ended != ENDED_OVERFLOW:
                        yield f'event: end\ndata: {{"reason": "{stream.ended}"}}\n\n'
                    return
                if deliveries:
                    yield "".join(_frame(delivery) for delivery in deliveries)
                    continue
                if time.monotonic() - checked >= recheck:
                    checked = time.monotonic()
                    if not await still_allowed(stream):
                        # Ended as when the hub hears of a revocation: the next round says so.
                        stream.end(ENDED_REVOKED)
                        continue
                yield ": keep-alive\n\n"
        finally:
            live.leave(stream)


def init_app(app: Quart) -> None:
    """End *app*'s streams at once when its worker starts shutting down."""

    @app.before_serving
    async def end_streams_on_shutdown() -> None:
        when_draining(app, hub().drain)
