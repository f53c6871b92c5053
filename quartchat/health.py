"""Liveness with the state of the broker and the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from pydantic import BaseModel
from quart import Blueprint
from quart_schema import tag, validate_response

from .services import services

bp = Blueprint("health", __name__)

CHECK_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: str
    broker: str
    store: str
    writer: str


@bp.get("/healthz")
@tag(["operations"])
@validate_response(Health, 200)
@validate_response(Health, 503)
async def healthz() -> tuple[Health, int]:
    """200 when the broker, the store and the message writer work; 503 (naming the failing
    part) otherwise."""
    found = services()
    parts = {
        "broker": await _check(found.broker.ping()),
        "store": await _check(found.store.ping()),
        "writer": "ok" if found.writer.running() else "error: not running",
    }
    healthy = all(state == "ok" for state in parts.values())
    return Health(status="ok" if healthy else "fail", **parts), 200 if healthy else 503


async def _check(probe: Awaitable[None]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await probe
    except Exception as error:  # reported, not raised: this is the health report
        return f"error: {type(error).__name__}: {error}"[:200]
    return "ok"
