"""API documentation served by the app itself (no CDN): Swagger UI and the socket schemas."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, render_template
from quart_schema import hide

from .call.frames import call_schema
from .messages import protocol_schema

bp = Blueprint("apidocs", __name__)


@bp.get("/docs")
@hide
async def swagger_ui() -> str:
    return await render_template("docs.html")


@bp.get("/api/protocol.json")
@hide
async def websocket_schema() -> dict[str, Any]:
    """JSON Schema of every websocket frame (websocket routes are not in OpenAPI)."""
    return {**protocol_schema(), "call": call_schema()}
