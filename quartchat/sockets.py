"""Websocket plumbing shared by the room and call sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any, Literal

from quart import websocket

from .broker import Broker, BrokerUnavailable, SlowConsumer, Subscriber
from .metrics import OPEN_SOCKETS

CLOSE_TIMEOUT_SECONDS = 5.0

# Clients opt into every event type (presence, typing, history, ...) with this subprotocol;
# without it a socket speaks exactly the seed's protocol.
PROTOCOL = "quartchat.v1"

SocketKind = Literal["room", "call"]


class CloseCode(IntEnum):
    """Close codes the app sends; 4xxx are ours (RFC 6455 leaves them to applications).
    Hypercorn itself sends 1009 for a frame over ``limits.frame_max_bytes``."""

    GOING_AWAY = 1001
    TRY_AGAIN_LATER = 1013
    SLOW_CONSUMER = 4008
    REPLACED = 4009  # the same browser logged in for calls on a newer connection


class CloseSocket(Exception):
    """Raised inside a socket's loops to close it with ``code`` and ``reason``."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class OpenSockets:
    """The process's open sockets, so that a shutdown can close them all with 1001 at once
    (browsers then reconnect and resume) instead of leaving them to be cut off."""

    def __init__(self) -> None:
        self.going_away = asyncio.Event()
        self._count = 0
        self._none_open = asyncio.Event()
        self._none_open.set()

    @contextmanager
    def track(self) -> Iterator[None]:
        self._count += 1
        self._none_open.clear()
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._none_open.set()

    async def close_all(self) -> None:
        """Ask every open socket to close with ``GOING_AWAY``; return once all have."""
        self.going_away.set()
        await self._none_open.wait()


async def run_duplex(
    receive: Callable[[], Coroutine[Any, Any, None]],
    send: Callable[[], Coroutine[Any, Any, None]],
    inbox: Subscriber,
    sockets: OpenSockets,
    broker: Broker,
    kind: SocketKind,
) -> None:
    """Run a socket's receive and send loops together until one ends or fails.

    A watchdog ends both as soon as ``inbox`` overflows, even while the sender is blocked
    on a peer that stopped reading; the socket is then closed with ``SLOW_CONSUMER``.  A
    shutdown closes it with ``GOING_AWAY``.  Losing the broker closes it with
    ``TRY_AGAIN_LATER``: what is published meanwhile cannot reach it, so the client must
    come back and resume from the store once the broker is back.  A client disconnecting
    cancels the handler, and so this whole group, at its current await.
    """
    try:
        with sockets.track(), OPEN_SOCKETS.labels(kind).track_inprogress():
            async with asyncio.TaskGroup() as group:
                group.create_task(receive(), name="socket-receive")
                group.create_task(send(), name="socket-send")
                group.create_task(_raise_on_overflow(inbox), name="socket-watchdog")
                group.create_task(_raise_on_shutdown(sockets), name="socket-shutdown")
                group.create_task(_raise_on_broker_loss(broker), name="socket-broker")
    except* SlowConsumer:
        await close(CloseCode.SLOW_CONSUMER, "too slow: outbound queue overflowed")
    except* BrokerUnavailable:
        await close(CloseCode.TRY_AGAIN_LATER, "broker unavailable: reconnect")
    except* CloseSocket as group:
        first = group.exceptions[0]
        assert isinstance(first, CloseSocket)
        await close(first.code, first.reason)


async def _raise_on_overflow(inbox: Subscriber) -> None:
    await inbox.overflowed()
    raise SlowConsumer


async def _raise_on_broker_loss(broker: Broker) -> None:
    await broker.wait_state_change(True)
    raise CloseSocket(CloseCode.TRY_AGAIN_LATER, "broker unavailable: reconnect")


async def _raise_on_shutdown(sockets: OpenSockets) -> None:
    await sockets.going_away.wait()
    raise CloseSocket(CloseCode.GOING_AWAY, "server restarting: reconnect")


async def close(code: CloseCode, reason: str) -> None:
    """Close the current websocket, without waiting forever on a peer that does not read."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await websocket.close(code, reason)
    except TimeoutError:
        pass
