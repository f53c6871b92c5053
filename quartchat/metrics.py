"""Prometheus metrics: the metric objects, tiny helpers the sockets call, and ``/metrics``.

With several workers (``server.workers`` > 1) the ``quartchat`` command runs prometheus-client
in multiprocess mode (``$PROMETHEUS_MULTIPROC_DIR``, a private directory per run): whichever
worker answers ``/metrics`` reports every worker's counters and histograms added up, open
sockets summed, the broker as connected only when every worker's is, and rooms with members
per worker (a ``pid`` label; presence is per process, so a room can count on two workers).
"""

from __future__ import annotations

import asyncio
import glob
import os
from collections.abc import Iterable
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
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from quart import Blueprint, Response
from quart_schema import hide

from .broker import Broker, Frame

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
MMAP_HEADER_BYTES = 8  # a metric file's header: how much of it is in use
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
    "quartchat_chat_messages_delivered",
    "Chat messages handed to members' sockets live (one per member per message).",
)
DELIVERY_LATENCY = Histogram(
    "quartchat_chat_delivery_latency_seconds",
    "From a chat message's store timestamp (taken as its transaction begins) to its fan-out "
    "to this process's members (once per message per process).",
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


def chat_fanned_out(frame: Frame, members: int) -> None:
    """Count a chat message's live deliveries and observe its latency, once per message
    (a :meth:`~.broker.Broker.observe_fanout` observer): nothing per recipient.

    The timestamp is read from the text rather than parsed as JSON: ``"datetime":"`` cannot
    occur inside a JSON string (its quotes would be escaped), so the last one is the field.
    """
    if not members or frame.chat_id is None:
        return
    CHAT_DELIVERED.inc(members)
    text = frame.text
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
@hide  # Prometheus' text format, for the scraper: not part of the JSON API
async def metrics() -> Response:
    """Prometheus metrics, in its text exposition format."""
    body = await asyncio.to_thread(generate_latest, _registry())
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    if MULTIPROCESS_ENV not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    WorkersCollector(registry)  # type: ignore[no-untyped-call]  # every worker's files
    return registry


class WorkersCollector(MultiProcessCollector):
    """Every worker's metric files, but those still being created.

    A worker creates a file when it first touches a metric (at start-up, or at a new label
    value) and sizes it a moment later; read in between, the empty file fails the whole
    scrape (``struct.error``, a 500).  A file with no header yet holds no sample either.
    """

    def collect(self) -> Iterable[Metric]:
        files = glob.glob(os.path.join(self._path, "*.db"))
        started = [path for path in files if _size(path) >= MMAP_HEADER_BYTES]
        merged: Iterable[Metric] = self.merge(started, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:  # a dead worker's file, removed meanwhile
        return 0
