"""A lean websocket client for the load generator: the `websockets` library's Sans-I/O
protocol (handshake, framing, masking, closing) under a plain asyncio Protocol.

The library's asyncio client spends a future and a queue hop on every message; a load
generator reading tens of thousands of frames a second on one core cannot afford that, or
it, not the server, becomes what is measured.  Here each text frame is handed to a callback
straight from ``data_received``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

OnText = Callable[[str], None]
CLOSE_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 30.0


def _ignore(_text: str) -> None:
    pass


class HandshakeRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status


class WebSocket(asyncio.Protocol):
    """One client connection; ``on_text`` is called with every text frame received."""

    def __init__(self, url: str, subprotocols: Sequence[str], on_text: OnText) -> None:
        self.on_text = on_text
        self.received = 0
        self.close_code: int | None = None
        self._protocol = ClientProtocol(
            parse_uri(url), subprotocols=[Subprotocol(s) for s in subprotocols], max_size=None
        )
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._protocol.send_request(self._protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.received += 1
                    self.on_text(event.data.decode())
                elif event.opcode is Opcode.CLOSE and self._protocol.close_rcvd is not None:
                    self.close_code = self._protocol.close_rcvd.code
            elif isinstance(event, Response) and not self.opened.done():
                if event.status_code == 101 and self._protocol.handshake_exc is None:
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(HandshakeRefused(event.status_code))
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def send_text(self, text: str) -> None:
        self._protocol.send_text(text.encode())
        self._flush()

    def close(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._protocol.send_close(1000)
        self._flush()
        # The server closes TCP once it has answered; a server that never does is cut off.
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_SECONDS, self._transport.close)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _flush(self) -> None:
        assert self._transport is not None
        for data in self._protocol.data_to_send():
            if data:
                self._transport.write(data)
            elif self._transport.can_write_eof():
                self._transport.write_eof()


async def connect(
    url: str, on_text: OnText = _ignore, subprotocols: Sequence[str] = ()
) -> tuple[WebSocket, float]:
    """Open a connection; return it with its handshake time in seconds."""
    parts = urlsplit(url)
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
        _, connection = await loop.create_connection(
            lambda: WebSocket(url, subprotocols, on_text), parts.hostname, parts.port
        )
        await connection.opened
    return connection, time.perf_counter() - started
