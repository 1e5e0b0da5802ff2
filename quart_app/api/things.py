"""The signed-in user's to-do list: the resource behind the seed's 201 answers."""

from __future__ import annotations

from quart import Blueprint, Response, abort, jsonify, make_response, url_for
from quart.typing import ResponseTypes
from quart_auth import login_required
from quart_schema import document_response, validate_querystring, validate_request
from sqlalchemy import func, select

from ..auth import current_user
from ..db import db
from ..models import Thing
from ..openapi import errors, no_content, signed_in
from ..schemas import (
    CreatedHeaders,
    PageQuery,
    ThingCreate,
    ThingOut,
    ThingPage,
    ThingUpdate,
    TotalCountHeaders,
)

bp = Blueprint("things", __name__, url_prefix="/things")
ONE_THING = "/<int:thing_id>"


def _owner_id() -> int:
    assert current_user.account is not None  # every route here is login_required
    return current_user.account.id


async def _owned_thing(thing_id: int) -> Thing:
    # Someone else's thing is "not found", never "forbidden": ids leak nothing.
    thing = await db.get(Thing, thing_id)
    if thing is None or thing.owner_id != _owner_id():
        abort(404, "Thing not found")
    return thing


# The columns ThingOut shows, read as plain rows: no ORM objects for a read-only page.
THING_COLUMNS = (Thing.id, Thing.title, Thing.done, Thing.created_at, Thing.updated_at)


def _thing_json(thing: Thing) -> Response:
    # A ready Response, not a dict: quart-schema would build a new pydantic
    # TypeAdapter to serialise every dict a view returns.
    return jsonify(ThingOut.model_validate(thing).model_dump(mode="json"))


@bp.get("")
@signed_in
@errors(401, 422)
@document_response(ThingPage, 200, TotalCountHeaders)
@login_required
@validate_querystring(PageQuery)
async def list_things(query_args: PageQuery) -> tuple[ThingPage, dict[str, str]]:
    """One page of the user's things, newest first; the total is also in ``X-Total-Count``."""
    owner_id = _owner_id()
    # One round trip: the page's rows, each carrying the total as a window count.
    rows = (
        await db.session.execute(
            select(*THING_COLUMNS, func.count().over().label("total"))
            .where(Thing.owner_id == owner_id)
            .order_by(Thing.id.desc())
            .limit(query_args.limit)
            .offset(query_args.offset)
        )
    ).all()
    if rows:
        total = rows[0].total
    else:  # past the last page there is no row to carry the total
        count = select(func.count()).select_from(Thing).where(Thing.owner_id == owner_id)
        total = (await db.session.execute(count)).scalar_one()
    page = ThingPage(
        items=[ThingOut.model_validate(row) for row in rows],
        total=total,
        limit=query_args.limit,
        offset=query_args.offset,
    )
    # Seed rule 3, the (body, headers) tuple.
    return page, {"X-Total-Count": str(total)}


@bp.post("")
@signed_in
@errors(400, 401, 403, 413, 415, 422)
@document_response(ThingOut, 201, CreatedHeaders)
@login_required
@validate_request(ThingCreate)
async def create_thing(data: ThingCreate) -> ResponseTypes:
    """Store a new thing: 201, its JSON, and ``Location`` pointing at it."""
    thing = Thing(owner_id=_owner_id(), title=data.title, done=data.done)
    db.session.add(thing)
    await db.session.commit()
    # The seed's make_response(jsonify(data), 201), plus the Location a 201 should carry.
    response = await make_response(_thing_json(thing), 201)
    response.headers["Location"] = url_for("api.things.get_thing", thing_id=thing.id)
    return response


@bp.get(ONE_THING)
@signed_in
@errors(401, 404)
@document_response(ThingOut)
@login_required
async def get_thing(thing_id: int) -> Response:
    """One of the user's things."""
    return _thing_json(await _owned_thing(thing_id))


@bp.patch(ONE_THING)
@signed_in
@errors(400, 401, 403, 404, 413, 415, 422)
@document_response(ThingOut)
@login_required
@validate_request(ThingUpdate)
async def update_thing(thing_id: int, data: ThingUpdate) -> Response:
    """Change the title and/or the done flag of one of the user's things."""
    thing = await _owned_thing(thing_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(thing, field, value)
    await db.session.commit()
    return _thing_json(thing)


@bp.delete(ONE_THING)
@signed_in
@no_content
@errors(401, 403, 404, 415)
@login_required
async def delete_thing(thing_id: int) -> Response:
    """Delete one of the user's things: 204, no body."""
    await db.session.delete(await _owned_thing(thing_id))
    await db.session.commit()
    return Response(status=204)
