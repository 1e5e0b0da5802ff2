"""User management for admins, behind ``admin_required``."""

from __future__ import annotations

from quart import Blueprint, Response, abort, jsonify, make_response, url_for
from quart.typing import ResponseTypes
from quart_schema import document_response, validate_querystring, validate_request

from quart_app.data.accounts import (
    LastAdminError,
    UsernameTakenError,
    UserNotFoundError,
    delete_user,
    get_user,
    user_page,
)
from quart_app.data.models import Account, UserType
from quart_app.http.declared import errors, no_content
from quart_app.security.access import admin_required
from quart_app.security.credentials import create_user, update_user
from quart_app.web.schemas import (
    CreatedHeaders,
    PageQuery,
    UserCreate,
    UserOut,
    UserPage,
    UserUpdate,
)

bp = Blueprint("admin_users", __name__, url_prefix="/admin/users")
ONE_USER = "/<int:user_id>"

LAST_ADMIN = "This would leave no active admin"
NOT_FOUND = "User not found"


def _user_json(user: Account) -> Response:
    return jsonify(UserOut.model_validate(user).model_dump(mode="json"))


@bp.get("")
@document_response(UserPage)
@admin_required
@validate_querystring(PageQuery)
async def list_users(query_args: PageQuery) -> UserPage:
    """One page of users, oldest first."""
    users, total = await user_page(query_args.limit, query_args.offset)
    return UserPage(
        items=[UserOut.model_validate(user) for user in users],
        total=total,
        limit=query_args.limit,
        offset=query_args.offset,
    )


@bp.post("")
@errors(409)
@document_response(UserOut, 201, CreatedHeaders)
@admin_required
@validate_request(UserCreate)
async def create(data: UserCreate) -> ResponseTypes:
    """Create a user: 201 with ``Location``; 409 when the name is taken."""
    try:
        user = await create_user(data.username, data.password, UserType(data.user_type))
    except UsernameTakenError:
        abort(409, "That username is taken")
    response = await make_response(_user_json(user), 201)
    response.headers["Location"] = url_for("api.admin_users.get", user_id=user.id)
    return response


@bp.get(ONE_USER)
@document_response(UserOut)
@admin_required
async def get(user_id: int) -> Response:
    """One user."""
    user = await get_user(user_id)
    if user is None:
        abort(404, NOT_FOUND)
    return _user_json(user)


@bp.patch(ONE_USER)
@errors(409)
@document_response(UserOut)
@admin_required
@validate_request(UserUpdate)
async def update(user_id: int, data: UserUpdate) -> Response:
    """Promote, demote, (de)activate a user or reset their password."""
    try:
        user = await update_user(
            user_id,
            user_type=UserType(data.user_type) if data.user_type else None,
            is_active=data.is_active,
            password=data.password,
        )
    except UserNotFoundError:
        abort(404, NOT_FOUND)
    except LastAdminError:
        abort(409, LAST_ADMIN)
    return _user_json(user)


@bp.delete(ONE_USER)
@no_content
@errors(409)
@admin_required
async def delete(user_id: int) -> Response:
    """Delete a user with their sessions and things: 204."""
    try:
        await delete_user(user_id)
    except UserNotFoundError:
        abort(404, NOT_FOUND)
    except LastAdminError:
        abort(409, LAST_ADMIN)
    return Response(status=204)
