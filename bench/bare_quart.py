"""The ceiling for a Quart app: the same answer as /api/status with nothing else."""

from __future__ import annotations

from quart import Quart, Response, jsonify

app = Quart(__name__)


@app.get("/api/status")
async def status() -> Response:
    """``{"success": true}``."""
    return jsonify(success=True)
