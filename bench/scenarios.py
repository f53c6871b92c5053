"""The load: each scenario drives a running server with real websocket clients and returns
what it measured.  Chat messages carry their send time (``t=<ns>``) so latency is end to
end, and their sender and number (``s=<sender> <n>``); every client keeps what it received,
each run waits for a drain, and then (outside the measured window) each client's messages
are checked: every sender of its room, each message once, in the order sent."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .servers import Running
from .wsclient import WebSocket, connect

MARK = "t="
TAG = " s="  # then the sender's name and the message's number
DRAIN_SECONDS = 10.0  # no delivery for this long: whatever has not arrived is lost
CONNECT_CONCURRENCY = 64

Result = dict[str, Any]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


@dataclass
class Meter:
    """Wall time, the server's CPU time and this process's between start and stop."""

    server: Running
    started: float = 0.0
    server_cpu: float = 0.0
    own_cpu: float = 0.0
    seconds: float = 0.0

    def start(self) -> None:
        self.server_cpu = self.server.cpu_seconds()
        self.own_cpu = sum(os.times()[:2])
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self.started
        self.server_cpu = self.server.cpu_seconds() - self.server_cpu
        self.own_cpu = sum(os.times()[:2]) - self.own_cpu

    def figures(self) -> Result:
        return {
            "seconds": round(self.seconds, 2),
            "server_busy": round(self.server_cpu / self.seconds, 2),
            "loadgen_busy": round(self.own_cpu / self.seconds, 2),
            "server_rss_mb": round(self.server.rss_kb() / 1024, 1),
        }


async def open_many(
    urls: list[str], on_text: Callable[[int], Callable[[str], None]], dialect: str = ""
) -> tuple[list[WebSocket], Result]:
    """Open a connection to each url, ``CONNECT_CONCURRENCY`` handshakes at a time, asking
    for the subprotocol ``dialect`` if given."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    handshakes: list[float] = []
    subprotocols = [dialect] if dialect else []

    async def one(index: int, url: str) -> WebSocket:
        async with gate:
            connection, seconds = await connect(url, on_text(index), subprotocols)
        handshakes.append(seconds)
        return connection

    started = time.perf_counter()
    connections = await asyncio.gather(*(one(i, url) for i, url in enumerate(urls)))
    elapsed = time.perf_counter() - started
    return list(connections), {
        "connections": len(urls),
        "connections_per_second": round(len(urls) / elapsed),
        "handshake_ms_p50": round(quantile(handshakes, 0.50) * 1e3, 2),
        "handshake_ms_p99": round(quantile(handshakes, 0.99) * 1e3, 2),
    }


@dataclass
class Deliveries:
    """Counts chat messages received and their latencies; ``done`` once all arrived.  Each
    client's messages are kept (:meth:`for_client`) for :meth:`exact_clients`."""

    expected: int
    count: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    last_progress: float = field(default_factory=time.perf_counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[list[str]] = field(default_factory=list)

    def for_client(self) -> Callable[[str], None]:
        """The ``on_text`` of one more client."""
        kept: list[str] = []
        self.received.append(kept)

        def on_text(text: str) -> None:
            if self.on_text(text):
                kept.append(text)

        return on_text

    def on_text(self, text: str) -> bool:
        start = text.find(MARK)
        if start < 0:
            return False
        end = text.index(" ", start)
        self.latencies_ns.append(time.monotonic_ns() - int(text[start + len(MARK) : end]))
        self.count += 1
        self.last_progress = time.perf_counter()
        if self.count >= self.expected:
            self.done.set()
        return True

    def exact_clients(self, senders: int, messages: int) -> int:
        """How many clients got exactly each of ``senders`` senders' ``messages`` messages,
        once each and in the order sent (a duplicate, a gap, a reordering or another room's
        message all make a client inexact)."""
        exact = 0
        for texts in self.received:
            numbers: dict[str, list[int]] = {}
            for text in texts:
                sender, number, _ = text[text.index(TAG) + len(TAG) :].split(" ", 2)
                numbers.setdefault(sender, []).append(int(number))
            in_order = list(range(messages))
            exact += len(numbers) == senders and all(n == in_order for n in numbers.values())
        return exact

    async def drain(self) -> None:
        while not self.done.is_set():
            try:
                async with asyncio.timeout(1):
                    await self.done.wait()
            except TimeoutError:
                if time.perf_counter() - self.last_progress > DRAIN_SECONDS:
                    return

    def figures(self, meter: Meter) -> Result:
        ms = [value / 1e6 for value in self.latencies_ns]
        return {
            "delivered": self.count,
            "expected": self.expected,
            "delivered_ratio": round(self.count / self.expected, 4),
            "deliveries_per_second": round(self.count / meter.seconds),
            "latency_ms_p50": round(quantile(ms, 0.50), 2),
            "latency_ms_p95": round(quantile(ms, 0.95), 2),
            "latency_ms_p99": round(quantile(ms, 0.99), 2),
            "server_cpu_us_per_delivery": round(meter.server_cpu / max(1, self.count) * 1e6, 2),
        }


class Sender:
    """Posts ``messages`` chat messages, at most ``window`` unacknowledged (its own echo is
    the acknowledgement), or one every ``interval`` seconds when paced."""

    def __init__(
        self, tag: str, messages: int, window: int, deliveries: Deliveries, client_ids: bool
    ) -> None:
        self.tag = f"{TAG}{tag} "
        self.messages = self.left = messages
        self.client_ids = client_ids  # as browsers send them, quartchat.v1 (docs/protocol.md)
        self.on_delivery = deliveries.for_client()
        self.window = window
        self.in_flight = 0
        self.finished = asyncio.Event()
        self.connection: WebSocket | None = None

    def on_text(self, text: str) -> None:
        self.on_delivery(text)
        if self.tag in text:
            self.in_flight -= 1
            if self.window:  # paced senders post on their clock, not on acknowledgements
                self.fill()

    def post(self) -> None:
        assert self.connection is not None
        number = self.messages - self.left
        frame = {"message": f"{MARK}{time.monotonic_ns()}{self.tag}{number} pad"}
        if self.client_ids:
            frame["client_id"] = f"{self.tag[len(TAG) : -1]}-{number}"
        self.connection.send_text(json.dumps(frame))
        self.left -= 1
        self.in_flight += 1

    def fill(self) -> None:
        while self.left and self.in_flight < self.window:
            self.post()
        if not self.left and not self.in_flight:
            self.finished.set()

    async def paced(self, interval: float, offset: float) -> None:
        await asyncio.sleep(offset)
        next_at = time.perf_counter()
        while self.left:
            self.post()
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


async def fanout(
    server: Running,
    name: str,
    rooms: int,
    members: int,
    senders: int,
    messages: int,
    window: int = 8,
    rate: float | None = None,
) -> Result:
    """``rooms`` rooms of ``members`` (``senders`` of them posting ``messages`` each) at
    full speed (``window`` in flight per sender), or paced at ``rate`` deliveries/s."""
    deliveries = Deliveries(expected=rooms * members * senders * messages)
    base = f"ws://127.0.0.1:{server.port}/ws/room"
    dialect = server.target.dialect
    readers = [
        f"{base}/{name}-{room}/r{index}/"
        for room in range(rooms)
        for index in range(members - senders)
    ]
    reader_connections, opened = await open_many(
        readers, lambda _: deliveries.for_client(), dialect
    )
    posting = [
        Sender(f"{room}.{index}", messages, window, deliveries, client_ids=bool(dialect))
        for room in range(rooms)
        for index in range(senders)
    ]
    urls = [f"{base}/{name}-{room}/s{index}/" for room in range(rooms) for index in range(senders)]
    sender_connections, _ = await open_many(urls, lambda i: posting[i].on_text, dialect)
    for sender, connection in zip(posting, sender_connections, strict=True):
        sender.connection = connection
    await asyncio.sleep(0.5)
    meter = Meter(server)
    meter.start()
    if rate is None:
        for sender in posting:
            sender.fill()
    else:
        for sender in posting:
            sender.window = 0
        interval = len(posting) * members / rate  # seconds between one sender's posts
        pacing = [
            asyncio.create_task(sender.paced(interval, interval * i / len(posting)))
            for i, sender in enumerate(posting)
        ]
    await deliveries.drain()
    meter.stop()
    if rate is not None:
        for task in pacing:
            task.cancel()
    result = {**opened, **deliveries.figures(meter), **meter.figures()}
    result["exact_ratio"] = round(
        deliveries.exact_clients(senders, messages) / (rooms * members), 4
    )
    await close_all([*reader_connections, *sender_connections])
    return result


async def close_all(connections: list[WebSocket]) -> None:
    for connection in connections:
        connection.close()
    await asyncio.gather(*(connection.closed for connection in connections))


async def idle(server: Running, name: str, connections: int, rooms: int) -> Result:
    """Open ``connections`` room sockets that then stay quiet; the server's RSS growth per
    connection is what one idle member costs."""
    base = f"ws://127.0.0.1:{server.port}/ws/room"
    await asyncio.sleep(1)
    before = server.rss_kb()
    meter = Meter(server)
    meter.start()
    urls = [f"{base}/{name}-{i % rooms}/u{i}/" for i in range(connections)]
    opened_connections, opened = await open_many(urls, lambda _: _ignore)
    meter.stop()
    await asyncio.sleep(2)  # let the server settle (replays, presence) before reading RSS
    grown = server.rss_kb() - before
    result = {
        **opened,
        "rss_kb_per_connection": round(grown / connections, 1),
        "server_cpu_us_per_connection": round(meter.server_cpu / connections * 1e6),
        **meter.figures(),
    }
    await close_all(opened_connections)
    return result


def _ignore(_text: str) -> None:
    pass


async def storm(server: Running, name: str, clients: int, rooms: int) -> Result:
    """``clients`` members in ``rooms`` rooms; the server restarts (SIGTERM, start) and they
    all come back at once with ``?since`` (see :mod:`bench.storm`)."""
    from .storm import reconnect_storm

    result = await reconnect_storm(
        f"ws://127.0.0.1:{server.port}", clients, rooms, lambda: asyncio.to_thread(server.restart)
    )
    return {
        "connections": clients,
        "delivered_ratio": round(result.resumed / clients, 4),
        "recovery_seconds": result.recovery_seconds,
        "restart_seconds": result.restart_seconds,
        "refused_attempts": result.refused_attempts,
        "loadgen_cpu_seconds": result.client_cpu_seconds,
        "server_rss_mb": round(server.rss_kb() / 1024, 1),
    }
