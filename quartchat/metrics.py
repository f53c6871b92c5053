"""Prometheus metrics: the metric objects, tiny helpers the sockets call, and ``/metrics``.

With several workers (``server.workers`` > 1) the ``quartchat`` command runs prometheus-client
in multiprocess mode (``$PROMETHEUS_MULTIPROC_DIR``, a private directory per run): whichever
worker answers ``/metrics`` reports every worker's counters and histograms added up, open
sockets summed, the broker as connected only when every worker's is, and rooms with members
per worker (a ``pid`` label; presence is per process, so a room can count on two workers).
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from quart import Blueprint, Response
from quart_schema import tag

from .broker import Broker

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
SOCKET_KINDS = ("room", "call")

OPEN_SOCKETS = Gauge(
    "quartchat_open_sockets",
    "Websockets open now, by kind (room or call).",
    ["kind"],
    multiprocess_mode="livesum",
)
ROOMS_WITH_MEMBERS = Gauge(
    "quartchat_rooms_with_members",
    "Rooms with anyone in them (per worker process with several workers).",
    multiprocess_mode="liveall",
)
CHAT_ACCEPTED = Counter(
    "quartchat_chat_messages_accepted", "Chat messages stored (resends of one are counted once)."
)
CHAT_DELIVERED = Counter(
    "quartchat_chat_messages_delivered", "Chat messages written to a member's socket, live."
)
DELIVERY_LATENCY = Histogram(
    "quartchat_chat_delivery_latency_seconds",
    "From a chat message's store timestamp (taken as its transaction begins) to a member's "
    "socket writing it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CALLS_STARTED = Counter("quartchat_calls_started", "Calls placed to someone online.")
CALLS_ANSWERED = Counter("quartchat_calls_answered", "Calls accepted by the callee.")
CALLS_ENDED = Counter(
    "quartchat_calls_ended",
    "Calls ended, by reason, counted by the side that ends them: declined, cancelled, "
    "no_answer, hung_up, disconnected, busy (the callee was in a call) or unavailable (the "
    "callee's connection did not respond).",
    ["reason"],
)
BROKER_CONNECTED = Gauge(
    "quartchat_broker_connected",
    "1 while the broker is connected (with several workers: every worker's).",
    multiprocess_mode="livemin",
)
BROKER_RECONNECTS = Counter(
    "quartchat_broker_reconnects", "Times the broker connected again after losing its engine."
)

for _kind in SOCKET_KINDS:
    OPEN_SOCKETS.labels(_kind)  # present at 0 from the start


DATETIME_FIELD = '"datetime":"'


def chat_delivered(text: str) -> None:
    """Count one live delivery of an encoded chat message and observe its latency.

    The timestamp is read from the text rather than parsed as JSON: ``"datetime":"`` cannot
    occur inside a JSON string (its quotes would be escaped), so the last one is the field.
    """
    CHAT_DELIVERED.inc()
    start = text.rfind(DATETIME_FIELD) + len(DATETIME_FIELD)
    stored_at = datetime.fromisoformat(text[start : text.index('"', start)])
    DELIVERY_LATENCY.observe(max(0.0, (datetime.now(stored_at.tzinfo) - stored_at).total_seconds()))


async def watch_broker(broker: Broker) -> None:
    """Mirror the broker's connection state in ``BROKER_CONNECTED`` and count reconnects;
    runs for the app's serving lifetime."""
    connected = broker.connected
    BROKER_CONNECTED.set(connected)
    while True:
        now = await broker.wait_state_change(connected)
        if now or now == connected:  # the same state again means down and up in between
            BROKER_RECONNECTS.inc()
        connected = now
        BROKER_CONNECTED.set(connected)


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@tag(["operations"])
async def metrics() -> Response:
    """Prometheus metrics, in its text exposition format."""
    body = await asyncio.to_thread(generate_latest, _registry())
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    if MULTIPROCESS_ENV not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # every worker's files
    return registry
