"""Websocket plumbing shared by the room and call sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any, Literal, NoReturn, cast

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, websocket

from .broker import Broker, BrokerUnavailable, SlowConsumer, Subscriber
from .metrics import OPEN_SOCKETS

CLOSE_TIMEOUT_SECONDS = 5.0

# Clients opt into every event type (presence, typing, history, ...) with this subprotocol;
# without it a socket speaks exactly the seed's protocol.
PROTOCOL = "quartchat.v1"

SocketKind = Literal["room", "call"]
ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]
SEND_KEY = "quartchat.send"


class CloseCode(IntEnum):
    """Close codes the app sends; 4xxx are ours (RFC 6455 leaves them to applications).
    Hypercorn itself sends 1009 for a frame over ``limits.frame_max_bytes``."""

    GOING_AWAY = 1001
    TRY_AGAIN_LATER = 1013
    SLOW_CONSUMER = 4008
    REPLACED = 4009  # the same browser logged in for calls on a newer connection


class KeepSend:
    """ASGI middleware: keeps each websocket's ASGI ``send`` in its scope, for
    :func:`frame_writer`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "websocket":
            cast(dict[str, Any], scope)[SEND_KEY] = send
        await self.app(scope, receive, send)


def init_app(app: Quart) -> None:
    app.asgi_app = KeepSend(app.asgi_app)  # type: ignore[method-assign]


def frame_writer() -> Callable[[str], Awaitable[None]]:
    """Write text frames to the current (accepted) websocket straight through the server.

    Quart's ``websocket.send`` adds a ``sleep(0)``, an accept check and a signal dispatch
    to every frame; a socket's sender task writes one frame per delivery, so those are
    most of what the app adds to a fan-out.  The sender loops yield on their inbox anyway.
    """
    send: ASGISendCallable = cast(dict[str, Any], websocket.scope)[SEND_KEY]

    def write(text: str) -> Awaitable[None]:
        return send({"type": "websocket.send", "bytes": None, "text": text})

    return write


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
        self._closing = False
        self._going_away: asyncio.Future[None] | None = None
        self._count = 0
        self._none_open = asyncio.Event()
        self._none_open.set()

    def going_away(self) -> asyncio.Future[None]:
        """A future done once the process is shutting down (wait for it with
        :func:`asyncio.wait`: it is shared)."""
        if self._going_away is None:
            self._going_away = asyncio.get_running_loop().create_future()
            if self._closing:
                self._going_away.set_result(None)
        return self._going_away

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
        self._closing = True
        going_away = self.going_away()
        if not going_away.done():
            going_away.set_result(None)
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

    Meanwhile the handler's own task watches for a reason to close: ``inbox`` overflowing
    (even while the sender is blocked on a peer that stopped reading) closes the socket
    with ``SLOW_CONSUMER``; a shutdown with ``GOING_AWAY``; losing the broker with
    ``TRY_AGAIN_LATER``: what is published meanwhile cannot reach it, so the client must
    come back and resume from the store once the broker is back.  A client disconnecting
    cancels the handler, and so this whole group, at its current await.  (Two tasks per
    socket, not one per concern: thousands of idle sockets each pay for every task.)
    """
    try:
        with sockets.track(), OPEN_SOCKETS.labels(kind).track_inprogress():
            async with asyncio.TaskGroup() as group:
                group.create_task(receive(), name="socket-receive")
                group.create_task(send(), name="socket-send")
                await _reason_to_close(inbox, sockets, broker)
    except* SlowConsumer:
        await close(CloseCode.SLOW_CONSUMER, "too slow: outbound queue overflowed")
    except* BrokerUnavailable:
        await close(CloseCode.TRY_AGAIN_LATER, "broker unavailable: reconnect")
    except* CloseSocket as group:
        first = group.exceptions[0]
        assert isinstance(first, CloseSocket)
        await close(first.code, first.reason)


async def _reason_to_close(inbox: Subscriber, sockets: OpenSockets, broker: Broker) -> NoReturn:
    overflow, going_away, lost = inbox.overflow, sockets.going_away(), broker.state_changed(True)
    await asyncio.wait([overflow, going_away, lost], return_when=asyncio.FIRST_COMPLETED)
    if overflow.done():
        raise SlowConsumer
    if going_away.done():
        raise CloseSocket(CloseCode.GOING_AWAY, "server restarting: reconnect")
    raise CloseSocket(CloseCode.TRY_AGAIN_LATER, "broker unavailable: reconnect")


async def close(code: CloseCode, reason: str) -> None:
    """Close the current websocket, without waiting forever on a peer that does not read."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await websocket.close(code, reason)
    except TimeoutError:
        pass
