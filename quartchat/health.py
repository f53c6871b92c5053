"""Probes: liveness (``/healthz``) and readiness (``/readyz``: the broker, the store and the
message writer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import tag, validate_response

from .services import services

bp = Blueprint("health", __name__)

CHECK_TIMEOUT_SECONDS = 2.0


class Liveness(BaseModel):
    status: str = Field(description='Always "ok": an answer at all means the process serves.')


class Readiness(BaseModel):
    status: str = Field(description='"ok", or "fail" when any part fails.')
    broker: str = Field(description='"ok" or "error: <why>".')
    store: str = Field(description='"ok" or "error: <why>".')
    writer: str = Field(description='"ok" or "error: <why>" (the task that stores messages).')


@bp.get("/healthz")
@tag(["operations"])
@validate_response(Liveness, 200)
async def healthz() -> Liveness:
    """Liveness: 200 while the process serves requests, whatever the broker and store do
    (restarting the process would not bring them back)."""
    return Liveness(status="ok")


@bp.get("/readyz")
@tag(["operations"])
@validate_response(Readiness, 200)
@validate_response(Readiness, 503)
async def readyz() -> tuple[Readiness, int]:
    """Readiness: 200 when the broker and the store are reachable and the message writer
    runs; 503 otherwise, naming what fails."""
    found = services()
    broker, store = await asyncio.gather(_check(found.broker.ping()), _check(found.store.ping()))
    writer = "ok" if found.writer.running() else "error: not running"
    ready = broker == store == writer == "ok"
    report = Readiness(status="ok" if ready else "fail", broker=broker, store=store, writer=writer)
    return report, 200 if ready else 503


async def _check(probe: Awaitable[None]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await probe
    except Exception as error:  # reported, not raised: this is the readiness report
        return f"error: {type(error).__name__}: {error}"[:200]
    return "ok"
