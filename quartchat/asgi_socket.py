"""Websockets served beside the Quart app, straight over ASGI.

A websocket stays open as long as its person stays, and one process carries thousands of
them, so what each one holds while idle is what a server's capacity is made of.  Through
Quart every websocket also holds the framework's request context, a receive task and queue,
and a chain of suspended dispatch coroutines: an idle Quart websocket that does nothing
costs 1.6 times what the bare server costs for it (docs/performance.md), and every frame
received takes two task switches and a signal more.  So the room and call sockets are
:class:`WebsocketRoute` middleware in front of the app, inside the same middleware as
everything else (trusted proxies, the Origin check and the per-address limits); pages and
the HTTP API stay with Quart.  A handler speaks to its connection through
:class:`ASGISocket`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope, WebsocketScope

from .broker import BrokerUnavailable
from .sockets import CLOSE_TIMEOUT_SECONDS, ASGIApp, CloseCode, Disconnected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    """An HTTP answer to a handshake instead of the upgrade, with a JSON body."""

    status: int
    error: str
    message: str
    headers: Sequence[tuple[bytes, bytes]] = ()


class ASGISocket:
    """One websocket connection, spoken to through the server's ASGI ``receive`` and
    ``send`` directly: no task or queue of its own, so an idle socket costs what the server
    costs and nothing more.  ``send`` is the server's own, for writing prepared events
    (``await socket.send(frame.event)``); frames are read with
    ``received(await socket.receive())``, which is one coroutine less for an idle socket to
    hold than a method wrapping the two.
    """

    __slots__ = ("accepted", "receive", "scope", "send")

    def __init__(
        self, scope: WebsocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send: Any = send  # ASGISendCallable; Any: prepared events are plain dicts
        self.accepted = False

    @property
    def subprotocols(self) -> list[str]:
        return list(self.scope.get("subprotocols") or ())

    def query(self, name: str) -> str | None:
        """The first value of ``name`` in the query string, if any."""
        values = parse_qs(self.scope["query_string"].decode("latin-1")).get(name)
        return values[0] if values else None

    def header(self, name: bytes) -> str | None:
        """The first request header ``name`` (lower case), if any."""
        for header, value in self.scope["headers"]:
            if header.lower() == name:
                return value.decode("latin-1")
        return None

    async def accept(self, subprotocol: str | None = None) -> None:
        await self.send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})
        self.accepted = True

    async def send_text(self, text: str) -> None:
        await self.send({"type": "websocket.send", "bytes": None, "text": text})

    async def close(self, code: CloseCode, reason: str) -> None:
        """Close, without waiting forever on a peer that does not read."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.send({"type": "websocket.close", "code": int(code), "reason": reason})
        except TimeoutError:
            pass

    async def refuse(self, refusal: Refusal) -> None:
        await refuse(self.scope, self.send, refusal)


def received(event: Any) -> str | bytes | None:
    """What an ASGI websocket event brings: a frame's text (or bytes, for a binary frame),
    or None (``websocket.connect``); raises :class:`~quartchat.sockets.Disconnected` once
    the client has gone."""
    kind = event["type"]
    if kind == "websocket.receive":
        text = event.get("text")
        return text if text is not None else event.get("bytes") or b""
    if kind == "websocket.connect":
        return None
    raise Disconnected  # websocket.disconnect


class Session(Protocol):
    async def run(self) -> None:
        """Accept the socket and serve it until it closes; raises
        :class:`~quartchat.broker.BrokerUnavailable` if the broker is lost before the
        socket is accepted."""


Match = Callable[[str], tuple[str, ...] | None]  # the path's names, or None: not this route
Opener = Callable[..., Awaitable["Session | Refusal"]]  # (socket, *names) -> what to run


class WebsocketRoute:
    """ASGI middleware: websockets at a path ``match`` recognises are opened by ``open``
    (with the names ``match`` found in the path) and run here; everything else goes on to
    ``app``.  A refused handshake gets its HTTP answer; a broker lost before the socket is
    accepted, 503.

    ``open`` returns before the socket runs, so the only coroutines an open socket holds
    here are this one and its session's.
    """

    def __init__(self, app: ASGIApp, match: Match, open: Opener) -> None:
        self.app = app
        self.match = match
        self.open = open

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "websocket" or (names := self.match(route_path(scope))) is None:
            await self.app(scope, receive, send)
            return
        socket = ASGISocket(scope, receive, send)
        opened = await self.open(socket, *names)
        if isinstance(opened, Refusal):
            await socket.refuse(opened)
            return
        try:
            await opened.run()
        except BrokerUnavailable as error:
            if not socket.accepted:
                await socket.refuse(Refusal(503, "unavailable", f"Try again shortly: {error}"))
            else:  # leaving, in an outage (logged by the broker): the leases tell the others
                log.info("%s closed with the broker unavailable: %s", scope["path"], error)


def route_path(scope: WebsocketScope) -> str:
    """The path within the app (without ``root_path``), percent-decoded, as routes see it."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def refuse(scope: WebsocketScope, send: ASGISendCallable, refusal: Refusal) -> None:
    """Answer the handshake with ``refusal`` instead of upgrading."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        # A server without the ASGI denial-response extension answers this with a bare 403.
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.error})
        return
    body = json.dumps({"error": refusal.error, "message": refusal.message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *refusal.headers,
    ]
    await send(
        {"type": "websocket.http.response.start", "status": refusal.status, "headers": headers}
    )
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
