"""Handshake checks on a real Hypercorn server with a real websocket client: the Origin of
both sockets, the per-address connection cap and handshake rate, and which address counts
behind a trusted proxy.

Other client addresses come from binding to them: 127.0.0.0/8 is all loopback on Linux."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from quartchat.sockets import PROTOCOL

from .conftest import receive_json
from .servers import LiveServer

ROOM = "/ws/room/lobby/{}/"
CALL = "/ws/call/"
FORWARDED_CLIENTS = ("203.0.113.1", "203.0.113.2")


@contextlib.asynccontextmanager
async def accepted(
    server: LiveServer, path: str, **options: Any
) -> AsyncIterator[ClientConnection]:
    """A socket the app took: its first frame (presence, or the call socket's greeting)
    has arrived."""
    subprotocols = [PROTOCOL] if path.startswith("/ws/room/") else None
    async with connect(
        f"{server.ws_url}{path}", subprotocols=subprotocols, open_timeout=5, **options
    ) as connection:
        first = await receive_json(connection)
        assert first["type"] in ("presence", "connection")
        yield connection


async def refused(server: LiveServer, path: str, **options: Any) -> tuple[Response, Any]:
    """The HTTP answer to a handshake that must be refused, and its JSON body."""
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(f"{server.ws_url}{path}", open_timeout=5, **options):
            pass
    response = refusal.value.response
    assert response.headers["Content-Type"] == "application/json"
    return response, json.loads(response.body)


async def test_a_foreign_origin_is_refused_on_both_sockets(server: LiveServer) -> None:
    for path in (ROOM.format("ada"), CALL):
        for origin in ("http://evil.example", f"http://127.0.0.1:{server.port}.evil.example"):
            response, body = await refused(server, path, origin=origin)
            assert response.status_code == 403
            assert body["error"] == "origin_not_allowed"
            assert origin in body["message"]


async def test_pages_on_this_host_and_clients_without_origin_are_accepted(
    server: LiveServer,
) -> None:
    host = f"127.0.0.1:{server.port}"
    for path in (ROOM.format("ada"), CALL):
        # The scheme does not matter: behind a TLS proxy the page is https://, the app's ws://.
        for origin in (f"http://{host}", f"https://{host}", None):
            async with accepted(server, path, origin=origin):
                pass


async def test_behind_a_trusted_tls_proxy_only_https_pages_of_this_host_are_accepted(
    tmp_path: Path,
) -> None:
    env = {"QUARTCHAT_SERVER_TRUSTED_PROXIES": "127.0.0.1"}
    with LiveServer(tmp_path, env=env) as server:
        host = f"127.0.0.1:{server.port}"
        https = {"X-Forwarded-Proto": "https"}
        for path in (ROOM.format("ada"), CALL):
            async with accepted(server, path, origin=f"https://{host}", additional_headers=https):
                pass
            response, body = await refused(
                server, path, origin=f"http://{host}", additional_headers=https
            )
            assert (response.status_code, body["error"]) == (403, "origin_not_allowed")
            async with accepted(server, path, origin=f"http://{host}"):
                pass  # a plain connection: the proxy in front may still be TLS


async def test_an_origin_in_allowed_origins_is_accepted(tmp_path: Path) -> None:
    env = {"QUARTCHAT_SERVER_ALLOWED_ORIGINS": "https://Chat.Example.org:443/"}
    with LiveServer(tmp_path, env=env) as server:
        for path in (ROOM.format("ada"), CALL):
            async with accepted(server, path, origin="https://chat.example.org"):
                pass
            for other in ("http://chat.example.org", "https://chat.example.org:8443"):
                response, _ = await refused(server, path, origin=other)
                assert response.status_code == 403


async def test_one_address_holds_at_most_connections_per_ip_sockets(tmp_path: Path) -> None:
    with LiveServer(tmp_path, env={"QUARTCHAT_LIMITS_CONNECTIONS_PER_IP": "3"}) as server:
        async with contextlib.AsyncExitStack() as sockets:
            # Room and call sockets count together.
            for path in (ROOM.format("ada"), ROOM.format("bob"), CALL):
                await sockets.enter_async_context(accepted(server, path))
            for path in (ROOM.format("cy"), CALL):
                response, body = await refused(server, path)
                assert response.status_code == 429
                assert body["error"] == "too_many_connections"
                assert "3 websockets" in body["message"]
            # Another address has a cap of its own.
            async with accepted(server, CALL, local_addr=("127.0.0.2", 0)):
                pass
            await sockets.aclose()  # all three closed: the next is taken once the server sees it
            async with asyncio.timeout(10):
                while True:
                    try:
                        async with accepted(server, CALL):
                            break
                    except InvalidStatus as error:
                        assert error.response.status_code == 429
                        await asyncio.sleep(0.05)


async def test_a_burst_of_handshakes_beyond_the_bucket_gets_429_with_retry_after(
    tmp_path: Path,
) -> None:
    env = {
        "QUARTCHAT_LIMITS_HANDSHAKE_BURST": "3",
        "QUARTCHAT_LIMITS_HANDSHAKES_PER_IP_PER_SECOND": "0.01",  # one more per 100 s
    }
    with LiveServer(tmp_path, env=env) as server:
        for path in (ROOM.format("ada"), CALL, ROOM.format("bob")):
            async with accepted(server, path):
                pass
        for path in (ROOM.format("cy"), CALL):
            response, body = await refused(server, path)
            assert response.status_code == 429
            assert body["error"] == "too_many_handshakes"
            assert 1 <= int(response.headers["Retry-After"]) <= 100
        async with accepted(server, CALL, local_addr=("127.0.0.2", 0)):
            pass  # another address has a bucket of its own


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_cap(
    tmp_path: Path,
) -> None:
    env = {
        "QUARTCHAT_SERVER_TRUSTED_PROXIES": "127.0.0.1",
        "QUARTCHAT_LIMITS_CONNECTIONS_PER_IP": "2",
    }
    first, second = ({"X-Forwarded-For": client} for client in FORWARDED_CLIENTS)
    with LiveServer(tmp_path, env=env) as server:
        async with contextlib.AsyncExitStack() as sockets:
            for headers in (first, first, second, second):
                await sockets.enter_async_context(
                    accepted(server, CALL, additional_headers=headers)
                )
            for headers in (first, second):
                response, body = await refused(server, CALL, additional_headers=headers)
                assert (response.status_code, body["error"]) == (429, "too_many_connections")
            # The proxy's own address (no X-Forwarded-For) is one more client.
            await sockets.enter_async_context(accepted(server, CALL))
            # An untrusted peer's X-Forwarded-For is not believed: it counts as itself, and
            # cannot use up someone else's cap either.
            async with accepted(
                server, CALL, additional_headers=first, local_addr=("127.0.0.2", 0)
            ):
                pass
