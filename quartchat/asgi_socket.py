"""A websocket straight over ASGI: the handful of operations a socket handler needs, with
nothing in between it and the server (see :mod:`quartchat.chat.endpoint` for why the room
socket is served this way), and the HTTP answer that refuses a handshake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, WebsocketScope

from .sockets import CLOSE_TIMEOUT_SECONDS, CloseCode, Disconnected


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
