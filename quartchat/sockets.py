"""Websocket plumbing shared by the room and call sockets: close codes, the process's open
sockets, and the duplex loop each socket runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from enum import IntEnum
from types import TracebackType
from typing import Any, Literal, cast

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from .broker import Broker, BrokerUnavailable, Subscriber
from .metrics import OPEN_SOCKETS

CLOSE_TIMEOUT_SECONDS = 5.0

# Clients opt into every event type (presence, typing, history, ...) with this subprotocol;
# without it a socket speaks exactly the seed's protocol.
PROTOCOL = "quartchat.v1"

SocketKind = Literal["room", "call"]
ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]
CloseWith = Callable[["CloseCode", str], Awaitable[None]]


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


class Disconnected(Exception):
    """The client closed the connection (raised by a receive that reads the server's
    events directly; through Quart's own receive, a disconnect cancels the handler)."""


class Closing:
    """One socket's way out, registered with :class:`OpenSockets` while its loops run.

    Something outside the loops (its inbox overflowing, a shutdown, a broker outage, its
    send loop failing) calls it with a reason; that cancels the task running the receive
    loop, in the manner of :func:`asyncio.timeout`, and leaving the ``with`` block turns the
    cancellation into the reason: a :class:`CloseSocket`, or the send loop's exception.

    Callbacks rather than a watchdog task or a :class:`asyncio.TaskGroup`: thousands of idle
    sockets would each hold those, and an idle socket's memory is what caps how many
    people a process carries.
    """

    __slots__ = ("_sockets", "_task", "reason")

    def __init__(self, sockets: OpenSockets) -> None:
        self._sockets = sockets
        self._task: asyncio.Task[Any] | None = None
        self.reason: BaseException | None = None

    def __call__(self, code: CloseCode, reason: str) -> None:
        self.fail(CloseSocket(code, reason))

    def fail(self, reason: BaseException) -> None:
        if self._task is not None and self.reason is None:
            self.reason = reason
            self._task.cancel()

    def slow_consumer(self) -> None:
        """The inbox overflowed (a :attr:`~.broker.Subscriber.on_overflow`)."""
        self(CloseCode.SLOW_CONSUMER, "too slow: outbound queue overflowed")

    def sender_done(self, sender: asyncio.Task[None]) -> None:
        """The send loop ended: by itself only when it failed."""
        if not sender.cancelled() and sender.exception() is not None:
            self.fail(cast(BaseException, sender.exception()))

    def __enter__(self) -> Closing:
        self._task = asyncio.current_task()
        self._sockets.add(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._sockets.discard(self)
        task, self._task = self._task, None
        if self.reason is None or task is None:
            return
        # Our cancellation is spent; another one (the client gone, the server stopping)
        # still counts and propagates.
        if task.uncancel() == 0 and kind is asyncio.CancelledError:
            raise self.reason from None


class OpenSockets:
    """The process's open sockets, so that they can all be closed at once: with 1001 when
    the process shuts down (browsers then reconnect and resume) instead of being cut off,
    and with 1013 when the broker is lost (what is published meanwhile cannot reach them:
    they must come back and resume from the store once it is back)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._open: set[Closing] = set()
        self._shutting_down = False
        self._none_open = asyncio.Event()
        self._none_open.set()

    def add(self, closing: Closing) -> None:
        self._open.add(closing)
        self._none_open.clear()
        if self._shutting_down:
            closing(*_GOING_AWAY)
        elif not self._broker.connected:
            closing(*_BROKER_LOST)

    def discard(self, closing: Closing) -> None:
        self._open.discard(closing)
        if not self._open:
            self._none_open.set()

    def close_every(self, code: CloseCode, reason: str) -> None:
        for closing in list(self._open):
            closing(code, reason)

    async def close_all(self) -> None:
        """Close every open socket with ``GOING_AWAY`` (and any opened from now on); return
        once all have closed."""
        self._shutting_down = True
        self.close_every(*_GOING_AWAY)
        await self._none_open.wait()

    async def close_on_outage(self) -> None:
        """Close every socket with ``TRY_AGAIN_LATER`` each time the broker is lost; runs
        for the app's serving lifetime."""
        connected = self._broker.connected
        while True:
            now = await self._broker.wait_state_change(connected)
            if not now or now == connected:  # the same state again: down and up meanwhile
                self.close_every(*_BROKER_LOST)
            connected = now


_GOING_AWAY = (CloseCode.GOING_AWAY, "server restarting: reconnect")
_BROKER_LOST = (CloseCode.TRY_AGAIN_LATER, "broker unavailable: reconnect")
_OPEN_BY_KIND = {kind: OPEN_SOCKETS.labels(kind) for kind in ("room", "call")}


async def run_duplex(
    receive: Callable[[], Coroutine[Any, Any, None]],
    send: Callable[[], Coroutine[Any, Any, None]],
    inbox: Subscriber,
    sockets: OpenSockets,
    kind: SocketKind,
    close: CloseWith,
) -> None:
    """Run a socket's receive loop (in this task) and its send loop (in a second one) until
    one fails or the client leaves, or the socket is closed from outside: ``inbox``
    overflowing (even while the sender is blocked on a peer that stopped reading) closes it
    with ``SLOW_CONSUMER``; :class:`OpenSockets` with ``GOING_AWAY`` or
    ``TRY_AGAIN_LATER``.  The send loop never outlives this call.  ``close`` sends the close
    frame.
    """
    open_sockets = _OPEN_BY_KIND[kind]
    open_sockets.inc()
    try:
        with Closing(sockets) as closing:
            inbox.on_overflow = closing.slow_consumer
            sender = asyncio.create_task(send(), name="socket-send")
            sender.add_done_callback(closing.sender_done)
            try:
                await receive()
            finally:
                sender.remove_done_callback(closing.sender_done)
                sender.cancel()
                await asyncio.wait([sender])
                if not sender.cancelled():
                    sender.exception()  # retrieved: a failure meanwhile changes nothing now
    except Disconnected:
        pass
    except BrokerUnavailable:
        await close(CloseCode.TRY_AGAIN_LATER, "broker unavailable: reconnect")
    except CloseSocket as reason:
        await close(reason.code, reason.reason)
    finally:
        open_sockets.dec()
