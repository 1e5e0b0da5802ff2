"""The two routes of the Flask original, kept line for line so the port can be diffed."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, make_response
from quart.typing import ResponseTypes
from quart_schema import document_response

from quart_app.web.schemas import DoThingOut, StatusOut

bp = Blueprint("seed", __name__)


@bp.get("/api/status")
@document_response(StatusOut)
async def status() -> Response:
    """``{"success": true}`` with an explicitly set 200, as the seed's third answer does."""
    resp = jsonify(success=True)
    resp.status_code = 200
    return resp


@bp.get("/do_thing")
@document_response(DoThingOut, 201)
async def do_thing() -> ResponseTypes:
    """The seed's ``make_response(jsonify(data), 201)``; in Quart the call is awaited."""
    # ... other code ...
    data = {"message": "Done", "code": "SUCCESS"}
    return await make_response(jsonify(data), 201)
