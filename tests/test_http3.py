"""HTTP/3 over QUIC (``[server] quic_bind``) beside HTTP/1.1 and HTTP/2, with the dev
certificate: TCP responses advertise it (alt-svc), and an HTTP/3 client (aioquic) is served."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent

from .servers import LiveServer, free_port, run_cli

TIMEOUT_SECONDS = 10.0


class H3Client(QuicConnectionProtocol):
    """Just enough HTTP/3 for one GET at a time: its status, headers and body."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.h3 = H3Connection(self._quic)
        self.responses: dict[int, asyncio.Future[tuple[dict[bytes, bytes], bytes]]] = {}
        self.parts: dict[int, tuple[dict[bytes, bytes], bytearray]] = {}

    async def get(self, authority: str, path: str) -> tuple[dict[bytes, bytes], bytes]:
        stream_id = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ]
        self.h3.send_headers(stream_id, headers, end_stream=True)
        done = self.responses[stream_id] = asyncio.get_running_loop().create_future()
        self.transmit()
        return await done

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.h3.handle_event(event):
            self._on_h3(h3_event)

    def _on_h3(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            self.parts.setdefault(event.stream_id, ({}, bytearray()))[0].update(event.headers)
        elif isinstance(event, DataReceived):
            self.parts.setdefault(event.stream_id, ({}, bytearray()))[1].extend(event.data)
        else:
            return
        if event.stream_ended and event.stream_id in self.responses:
            headers, body = self.parts.pop(event.stream_id)
            self.responses.pop(event.stream_id).set_result((headers, bytes(body)))


@pytest.fixture(params=[1, 2], ids=["one-worker", "two-workers"])
def h3_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[LiveServer, int, Path]]:
    result = run_cli("dev-cert", "--dir", str(tmp_path / "tls"), "--host=localhost")
    assert result.returncode == 0, result.stderr
    quic_port = free_port()
    env = {
        "QUARTCHAT_SERVER_CERTFILE": str(tmp_path / "tls" / "cert.pem"),
        "QUARTCHAT_SERVER_KEYFILE": str(tmp_path / "tls" / "key.pem"),
        "QUARTCHAT_SERVER_QUIC_BIND": f"127.0.0.1:{quic_port}",
    }
    if request.param > 1:  # each worker gets its own UDP socket on the port
        env["QUARTCHAT_SERVER_WORKERS"] = str(request.param)
        env["QUARTCHAT_BROKER_URL"] = request.getfixturevalue("redis_url")
        env["QUARTCHAT_BROKER_NAMESPACE"] = f"h3-{tmp_path.name}"
    live = LiveServer(tmp_path, env=env)
    live.start()
    try:
        yield live, quic_port, tmp_path / "tls" / "ca.pem"
    finally:
        live.stop()


async def test_http3_is_advertised_and_served(h3_server: tuple[LiveServer, int, Path]) -> None:
    live, quic_port, cafile = h3_server
    context = ssl.create_default_context(cafile=str(cafile))
    async with httpx.AsyncClient(verify=context, http2=True, timeout=TIMEOUT_SECONDS) as http:
        over_tcp = await http.get(f"https://localhost:{live.port}/healthz")
    assert over_tcp.http_version == "HTTP/2"
    assert f'h3=":{quic_port}"; ma=3600' in over_tcp.headers.get_list("alt-svc")

    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.load_verify_locations(str(cafile))
    configuration.server_name = "localhost"
    async with asyncio.timeout(TIMEOUT_SECONDS):
        async with connect(
            "127.0.0.1", quic_port, configuration=configuration, create_protocol=H3Client
        ) as client:
            assert isinstance(client, H3Client)
            headers, body = await client.get(f"localhost:{quic_port}", "/healthz")
            rooms_headers, rooms = await client.get(f"localhost:{quic_port}", "/api/rooms")
    assert headers[b":status"] == b"200"
    assert json.loads(body) == {"status": "ok"}
    assert rooms_headers[b":status"] == b"200"
    assert json.loads(rooms) == {"rooms": []}


def test_http3_needs_tls() -> None:
    result = run_cli(env={"QUARTCHAT_SERVER_QUIC_BIND": "127.0.0.1:8443"})
    assert result.returncode == 2
    assert "server.quic_bind: HTTP/3 is always encrypted" in result.stderr
