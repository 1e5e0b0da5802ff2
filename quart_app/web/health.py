"""Liveness and readiness probes for process managers and load balancers."""

from __future__ import annotations

import asyncio
import json

from quart import Blueprint, Response, jsonify
from quart.typing import ResponseReturnValue
from quart_schema import document_response
from sqlalchemy import literal, select

from quart_app.data.database import db
from quart_app.data.statements import Query
from quart_app.http.declared import uses_database
from quart_app.web.schemas import HealthOut, ReadyOut

bp = Blueprint("health", __name__)

READINESS_TIMEOUT_SECONDS = 2.0
JSON_HEADERS = {"Content-Type": "application/json"}
UNAVAILABLE_HEADERS = {**JSON_HEADERS, "Retry-After": "1"}
_PING = Query(select(literal(1).label("ok")))


@bp.get("/healthz")
@document_response(HealthOut)
async def healthz() -> Response:
    """200 while the process can answer at all."""
    return jsonify(status="ok")


@bp.get("/readyz")
@document_response(ReadyOut)
@uses_database
async def readyz() -> ResponseReturnValue:
    """200 when the database answers within the timeout, else 503."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            await db.fetch(_PING)
    except Exception:  # any failure to reach the database means "not ready"
        # Seed idiom: json.dumps with the Content-Type spelled correctly (the seed wrote
        # "ContentType", which is just an unknown header and leaves text/html).
        # Retry-After as on every other 503 (errors.py), which the OpenAPI document promises.
        return json.dumps({"error": "Database unavailable"}), 503, UNAVAILABLE_HEADERS
    return json.dumps({"status": "ready"}), 200, JSON_HEADERS
