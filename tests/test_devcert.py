"""``quartchat dev-cert``, and serving with what it wrote: HTTP/2 by ALPN, websockets over
TLS, both with HTTP/1.1's Upgrade and HTTP/2's extended CONNECT (RFC 8441)."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
from cryptography import x509
from playwright.async_api import Browser, expect
from websockets.asyncio.client import connect
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from quartchat.sockets import PROTOCOL

from .conftest import RECEIVE_TIMEOUT_SECONDS, receive_until
from .servers import LiveServer, run_cli

HOSTS = ("127.0.0.1", "localhost")


def dev_cert(directory: Path) -> dict[str, str]:
    """Run the command; return the ``[server]`` settings it printed."""
    result = run_cli("dev-cert", "--dir", str(directory), *(f"--host={host}" for host in HOSTS))
    assert result.returncode == 0, result.stderr
    printed = result.stdout
    block = printed[printed.index("[server]") :].split("\n\n")[0]
    server: dict[str, str] = tomllib.loads(block)["server"]
    return server


def test_dev_cert_writes_a_certificate_and_says_how_to_use_it(tmp_path: Path) -> None:
    server = dev_cert(tmp_path / "tls")
    certfile, keyfile = Path(server["certfile"]), Path(server["keyfile"])
    assert certfile.parent == keyfile.parent == (tmp_path / "tls").resolve()
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    leaf = x509.load_pem_x509_certificates(certfile.read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    validity = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert validity <= timedelta(days=398)  # what browsers accept
    assert (certfile.parent / "ca.pem").is_file()


@pytest.fixture
def dev_tls_server(tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    server = dev_cert(tmp_path / "tls")
    live = LiveServer(
        tmp_path,
        env={
            "QUARTCHAT_SERVER_CERTFILE": server["certfile"],
            "QUARTCHAT_SERVER_KEYFILE": server["keyfile"],
        },
    )
    live.start()
    try:
        yield live, tmp_path / "tls" / "ca.pem"
    finally:
        live.stop()


def trusting(cafile: Path) -> ssl.SSLContext:
    """A fresh context per client: httpx sets ALPN (h2) on the context it is given."""
    return ssl.create_default_context(cafile=str(cafile))


async def test_browsers_get_http2_and_websockets_over_tls(
    dev_tls_server: tuple[LiveServer, Path],
) -> None:
    live, cafile = dev_tls_server
    async with httpx.AsyncClient(http2=True, verify=trusting(cafile), timeout=5) as client:
        response = await client.get(f"https://localhost:{live.port}/readyz")
    assert response.http_version == "HTTP/2"  # chosen by ALPN
    assert response.json()["status"] == "ok"
    url = f"wss://localhost:{live.port}/ws/room/secure/ada/"
    async with connect(url, ssl=trusting(cafile), subprotocols=[PROTOCOL]) as ada:
        await ada.send(json.dumps({"message": "over TLS"}))
        assert (await receive_until(ada, "chat_message"))["message"] == "over TLS"


class H2WebSocket:
    """A websocket over one HTTP/2 stream (RFC 8441), from the h2 and wsproto libraries:
    what a browser does when it already has an h2 connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self._frames = Connection(ConnectionType.CLIENT)  # frames only: no HTTP/1 handshake
        self._stream = 0
        self._status: str | None = None  # of the CONNECT response

    async def open(self, authority: str, path: str) -> None:
        self._h2.initiate_connection()
        await self._flush()
        async with asyncio.timeout(RECEIVE_TIMEOUT_SECONDS):
            while self._h2.remote_settings.enable_connect_protocol != 1:  # the server's offer
                await self._read()
            self._stream = self._h2.get_next_available_stream_id()
            request = {
                ":method": "CONNECT",
                ":protocol": "websocket",
                ":scheme": "https",
                ":path": path,
                ":authority": authority,
                "sec-websocket-version": "13",
                "sec-websocket-protocol": PROTOCOL,
            }
            self._h2.send_headers(self._stream, list(request.items()))
            await self._flush()
            while self._status is None:
                await self._read()
        assert self._status == "200"

    async def send(self, text: str) -> None:
        self._h2.send_data(self._stream, self._frames.send(TextMessage(data=text)))
        await self._flush()

    async def receive_json(self) -> Any:
        async with asyncio.timeout(RECEIVE_TIMEOUT_SECONDS):
            while True:
                for event in self._frames.events():
                    if isinstance(event, TextMessage):
                        return json.loads(event.data)
                await self._read()

    async def _read(self) -> None:
        """Read what the server sent; the stream's data goes to the websocket's frames (it
        can come in the same read as the response headers)."""
        data = await self._reader.read(65536)
        assert data, "the server closed the connection"
        for event in self._h2.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                self._status = dict(event.headers)[":status"]
            elif isinstance(event, h2.events.DataReceived):
                self._frames.receive_data(event.data)
                self._h2.acknowledge_received_data(event.flow_controlled_length, self._stream)
        await self._flush()

    async def _flush(self) -> None:
        self._writer.write(self._h2.data_to_send())
        await self._writer.drain()


@asynccontextmanager
async def h2_websocket(port: int, cafile: Path, path: str) -> AsyncIterator[H2WebSocket]:
    context = trusting(cafile)
    context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection("localhost", port, ssl=context)
    try:
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        socket = H2WebSocket(reader, writer)
        await socket.open(f"localhost:{port}", path)
        yield socket
    finally:
        writer.close()


async def test_a_websocket_over_http2_extended_connect(
    dev_tls_server: tuple[LiveServer, Path],
) -> None:
    live, cafile = dev_tls_server
    async with h2_websocket(live.port, cafile, "/ws/room/h2/ada/") as ada:
        assert (await ada.receive_json())["type"] == "presence"
        await ada.send(json.dumps({"type": "message", "message": "over HTTP/2"}))
        while (frame := await ada.receive_json())["type"] != "chat_message":
            pass
        assert frame["message"] == "over HTTP/2"


async def test_room_chat_in_a_browser_over_https_and_http2(
    dev_tls_server: tuple[LiveServer, Path], browser: Browser
) -> None:
    """Chromium on the dev certificate (accepted as a self-signed one, which is what a
    developer clicks through): pages come over HTTP/2 and the room's websocket is wss://."""
    live, _ = dev_tls_server
    base = f"https://localhost:{live.port}"
    pages = []
    for user in ("alice", "bob"):
        context = await browser.new_context(ignore_https_errors=True)
        page = await context.new_page()
        await page.goto(f"{base}/room/secure/{user}")
        await expect(page.locator("#connection-state")).to_have_attribute("data-state", "connected")
        pages.append(page)
    alice = pages[0]
    protocol = await alice.evaluate(
        "() => performance.getEntriesByType('navigation')[0].nextHopProtocol"
    )
    assert protocol == "h2"
    assert await alice.evaluate("() => window.isSecureContext")
    box = alice.locator("#message-input")
    await box.fill("over TLS, multiplexed")
    await box.press("Enter")
    for page in pages:
        stored = page.locator("#messages .message[data-id] .text")
        await expect(stored).to_have_text(["over TLS, multiplexed"])
    for page in pages:
        await page.context.close()
