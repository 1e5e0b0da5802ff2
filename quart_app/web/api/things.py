"""The signed-in user's to-do list: the resource behind the seed's 201 answers."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, abort, jsonify, make_response, url_for
from quart.typing import ResponseTypes
from quart_schema import document_response, validate_querystring, validate_request
from sqlalchemy import String, bindparam, delete, func, insert, select, update

from quart_app.data.base import MAX_ID, utcnow
from quart_app.data.database import db
from quart_app.data.events import (
    THING_CREATED,
    THING_DELETED,
    THING_UPDATED,
    append_event,
    logged_transaction,
)
from quart_app.data.models import Thing, User
from quart_app.data.statements import Query, Row
from quart_app.http.declared import errors, no_content
from quart_app.security.access import signed_in
from quart_app.security.auth import current_user
from quart_app.web.schemas import (
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

NOT_FOUND = "Thing not found"

# The columns ThingOut shows.
THING_COLUMNS = (Thing.id, Thing.title, Thing.done, Thing.created_at, Thing.updated_at)
_OWNED = (Thing.id == bindparam("id"), Thing.owner_id == bindparam("owner_id"))

# The page's rows, each carrying the total as a window count (see db.fetch_page).
_PAGE = Query(
    select(*THING_COLUMNS, func.count().over().label("total"))
    .where(Thing.owner_id == bindparam("owner_id"))
    .order_by(Thing.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_COUNT = Query(
    select(func.count().label("total"))
    .select_from(Thing)
    .where(Thing.owner_id == bindparam("owner_id"))
)
_GET = Query(select(*THING_COLUMNS).where(*_OWNED))
# Stored only while the owner exists: FOR SHARE (PostgreSQL; SQLite runs one writer at
# a time) makes a concurrent deletion of the owner wait for this insert, and then
# delete the new thing along with the owner, instead of breaking the foreign key.
_CREATE = Query(
    insert(Thing)
    .from_select(
        ["owner_id", "title", "done", "created_at", "updated_at"],
        select(
            User.id,
            bindparam("title", type_=String),
            bindparam("done", type_=Thing.done.type),
            bindparam("now", type_=Thing.created_at.type),
            bindparam("now", type_=Thing.updated_at.type),
        )
        .where(User.id == bindparam("owner_id"))
        .with_for_update(read=True),
    )
    .returning(*THING_COLUMNS)
)
# NULL means "leave as it is", so one statement serves every PATCH.
_UPDATE = Query(
    update(Thing)
    .where(*_OWNED)
    .values(
        title=func.coalesce(bindparam("title", type_=String), Thing.title),
        done=func.coalesce(bindparam("done", type_=Thing.done.type), Thing.done),
        updated_at=bindparam("now"),
    )
    .returning(*THING_COLUMNS)
)
_DELETE = Query(delete(Thing).where(*_OWNED))


def _owner_id() -> int:
    assert current_user.account is not None  # every route here is signed_in
    return current_user.account.id


def _existing_id(thing_id: int) -> int:
    # Someone else's thing is "not found", never "forbidden": ids leak nothing.
    if not 0 <= thing_id <= MAX_ID:
        abort(404, NOT_FOUND)
    return thing_id


def _thing_body(row: Row | None) -> dict[str, Any]:
    if row is None:
        abort(404, NOT_FOUND)
    return ThingOut.model_validate(row).model_dump(mode="json")


@bp.get("")
@signed_in
@document_response(ThingPage, 200, TotalCountHeaders)
@validate_querystring(PageQuery)
async def list_things(query_args: PageQuery) -> tuple[Response, dict[str, str]]:
    """One page of the user's things, newest first; the total is also in ``X-Total-Count``."""
    rows, total = await db.fetch_page(
        _PAGE, _COUNT, owner_id=_owner_id(), limit=query_args.limit, offset=query_args.offset
    )
    page = ThingPage.model_validate(
        {"items": rows, "total": total, "limit": query_args.limit, "offset": query_args.offset}
    )
    # Serialised by pydantic straight to JSON in one pass; a returned model would be
    # dumped to a dict first, then encoded again by the JSON provider.
    body = Response(page.model_dump_json(), content_type="application/json")
    # Seed rule 3, the (body, headers) tuple.
    return body, {"X-Total-Count": str(total)}


@bp.post("")
@signed_in
@errors(409)
@document_response(ThingOut, 201, CreatedHeaders)
@validate_request(ThingCreate)
async def create_thing(data: ThingCreate) -> ResponseTypes:
    """Store a new thing: 201, its JSON, and ``Location`` pointing at it."""
    owner_id = _owner_id()
    async with logged_transaction() as connection:
        row = await connection.fetchrow(
            _CREATE, owner_id=owner_id, title=data.title, done=data.done, now=utcnow()
        )
        if row is None:
            abort(409, "Your account was deleted while this request ran")
        thing = _thing_body(row)
        await append_event(connection, user_id=owner_id, kind=THING_CREATED, body=thing)
    # The seed's make_response(jsonify(data), 201), plus the Location a 201 should carry.
    response = await make_response(jsonify(thing), 201)
    response.headers["Location"] = url_for("api.things.get_thing", thing_id=thing["id"])
    return response


@bp.get(ONE_THING)
@signed_in
@document_response(ThingOut)
async def get_thing(thing_id: int) -> Response:
    """One of the user's things."""
    row = await db.fetchrow(_GET, id=_existing_id(thing_id), owner_id=_owner_id())
    return jsonify(_thing_body(row))


@bp.patch(ONE_THING)
@signed_in
@document_response(ThingOut)
@validate_request(ThingUpdate)
async def update_thing(thing_id: int, data: ThingUpdate) -> Response:
    """Change the title and/or the done flag of one of the user's things."""
    owner_id = _owner_id()
    async with logged_transaction() as connection:
        row = await connection.fetchrow(
            _UPDATE,
            id=_existing_id(thing_id),
            owner_id=owner_id,
            title=data.title,
            done=data.done,
            now=utcnow(),
        )
        thing = _thing_body(row)
        await append_event(connection, user_id=owner_id, kind=THING_UPDATED, body=thing)
    return jsonify(thing)


@bp.delete(ONE_THING)
@signed_in
@no_content
async def delete_thing(thing_id: int) -> Response:
    """Delete one of the user's things: 204, no body."""
    owner_id = _owner_id()
    async with logged_transaction() as connection:
        if not await connection.execute(_DELETE, id=_existing_id(thing_id), owner_id=owner_id):
            abort(404, NOT_FOUND)
        await append_event(connection, user_id=owner_id, kind=THING_DELETED, body={"id": thing_id})
    return Response(status=204)
