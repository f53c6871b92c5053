"""The room socket on a real Hypercorn server, with a real websocket client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from quartchat.sockets import PROTOCOL

from .conftest import assert_silent, receive_json, receive_until
from .servers import LiveServer


@asynccontextmanager
async def room(
    server: LiveServer, name: str, user: str, since: int | None = None, **options: Any
) -> AsyncIterator[ClientConnection]:
    query = f"?since={since}" if since is not None else ""
    url = f"{server.ws_url}/ws/room/{name}/{user}/{query}"
    async with connect(url, subprotocols=[PROTOCOL], open_timeout=5, **options) as connection:
        assert connection.subprotocol == PROTOCOL
        presence = await receive_json(connection)
        assert presence["type"] == "presence"
        yield connection


async def history_ids(connection: ClientConnection) -> list[int]:
    frame = await receive_until(connection, "history")
    return [message["id"] for message in frame["messages"]]


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"QUARTCHAT_LIMITS_RATE_PER_SECOND": "1000", "QUARTCHAT_LIMITS_RATE_BURST": "1000"}


async def post(connection: ClientConnection, text: str) -> dict[str, Any]:
    """Send a message and return its echo (the acknowledgement that it is stored)."""
    await connection.send(json.dumps({"type": "message", "message": text}))
    async with asyncio.timeout(5):
        while True:
            frame = await receive_json(connection)
            assert frame["type"] != "error", frame
            if frame["type"] == "chat_message" and frame["message"] == text:
                return frame


async def test_seed_client_over_real_hypercorn(server: LiveServer) -> None:
    async with (
        connect(f"{server.ws_url}/ws/room/lobby/ada/", open_timeout=5) as ada,
        connect(f"{server.ws_url}/ws/room/lobby/bob/", open_timeout=5) as bob,
    ):
        assert ada.subprotocol is None
        await ada.send(json.dumps({"message": "hello from the seed client"}))
        for connection in (ada, bob):
            frame = await receive_json(connection)
            assert frame["type"] == "chat_message"
            assert frame["message"] == "hello from the seed client"
            assert frame["user"] == "ada"
            assert frame["datetime"].endswith("+00:00")


async def test_two_members_see_every_message_once_in_order(server: LiveServer) -> None:
    async with room(server, "lobby", "ada") as ada, room(server, "lobby", "bob") as bob:
        await history_ids(ada)
        await history_ids(bob)

        async def collect(connection: ClientConnection) -> list[dict[str, Any]]:
            return [await receive_until(connection, "chat_message") for _ in range(10)]

        readers = asyncio.gather(collect(ada), collect(bob))
        for n in range(10):
            await (ada if n % 2 else bob).send(json.dumps({"message": f"m{n}"}))
        seen_by_ada, seen_by_bob = await readers
    assert [f["id"] for f in seen_by_ada] == [f["id"] for f in seen_by_bob] == list(range(1, 11))
    assert [f["message"] for f in seen_by_ada] == [f["message"] for f in seen_by_bob]
    assert sorted(f["message"] for f in seen_by_ada) == [f"m{n}" for n in range(10)]
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{server.http_url}/api/rooms/lobby/messages")
    assert [m["message"] for m in response.json()["messages"]] == [
        f["message"] for f in seen_by_ada
    ]


async def test_restart_mid_conversation_resumes_without_loss_or_duplicates(
    server: LiveServer,
) -> None:
    shown: list[int] = []

    def show(frames: list[dict[str, Any]]) -> None:
        shown.extend(frame["id"] for frame in frames if frame["id"] > (shown[-1] if shown else 0))

    async with room(server, "lobby", "ada") as ada, room(server, "lobby", "bob") as bob:
        await history_ids(ada)
        await history_ids(bob)
        await post(bob, "before restart 1")
        await post(bob, "before restart 2")
        show([await receive_until(ada, "chat_message") for _ in range(2)])
        server.stop()  # SIGTERM: a restart
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await ada.recv()
    server.start()
    async with room(server, "lobby", "bob") as bob:
        await history_ids(bob)
        await post(bob, "while ada was away 1")
        await post(bob, "while ada was away 2")
        async with room(server, "lobby", "ada", since=shown[-1]) as ada:
            replay = await receive_until(ada, "history")
            show(replay["messages"])
            await post(bob, "after ada came back")
            show([await receive_until(ada, "chat_message")])
            await assert_silent(ada)
    assert shown == [1, 2, 3, 4, 5]


async def test_sigterm_closes_sockets_with_going_away_and_exits_cleanly(
    server: LiveServer,
) -> None:
    async with room(server, "lobby", "ada") as ada:
        await history_ids(ada)
        assert server.process is not None
        process = server.process
        process.terminate()  # SIGTERM
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(2):  # well before Hypercorn's own 3 s grace period
                while True:
                    await ada.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert process.wait(timeout=10) == 0
    assert "Traceback" not in server.log.read_text()


async def test_acknowledged_messages_survive_sigkill(server: LiveServer) -> None:
    async with room(server, "lobby", "ada") as ada:
        await history_ids(ada)
        acknowledged = [(await post(ada, f"m{n}"))["id"] for n in range(20)]
    server.kill()
    server.start()
    async with room(server, "lobby", "bob") as bob:
        assert await history_ids(bob) == acknowledged == list(range(1, 21))


async def test_handshake_refused_over_http(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws_url}/ws/room/bad%20room/ada/", open_timeout=5):
            pass
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body)["error"] == "bad_handshake"


async def test_names_in_any_script_arrive_percent_decoded(server: LiveServer) -> None:
    """Browsers percent-encode the path; the room and user are the decoded names."""
    async with room(server, "caf%C3%A9", "%E5%BC%A0%E4%BC%9F") as member:
        echo = await post(member, "你好")
    assert (echo["room"], echo["user"]) == ("café", "张伟")


@pytest.mark.parametrize(
    "path", ["/ws/room/lobby/", "/ws/room/lobby/ada", "/ws/room/lobby/ada/more/", "/ws/nowhere/"]
)
async def test_other_websocket_paths_are_404(server: LiveServer, path: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws_url}{path}", open_timeout=5):
            pass
    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body)["error"] == "not_found"


async def test_oversized_frame_closes_with_1009(server: LiveServer) -> None:
    async with room(server, "lobby", "ada") as ada:
        await history_ids(ada)
        await ada.send(json.dumps({"message": "x" * 70_000}))  # > limits.frame_max_bytes
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await ada.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.fixture
def slow_server(tmp_path: Path) -> Any:
    live = LiveServer(
        tmp_path,
        env={
            "QUARTCHAT_LIMITS_QUEUE_LENGTH": "4",
            "QUARTCHAT_LIMITS_MESSAGE_MAX_CHARS": "60000",
            "QUARTCHAT_LIMITS_RATE_PER_SECOND": "10000",
            "QUARTCHAT_LIMITS_RATE_BURST": "10000",
        },
    )
    live.start()
    yield live
    live.stop()


async def test_a_client_that_stops_reading_is_closed_and_others_carry_on(
    slow_server: LiveServer,
) -> None:
    stalled_socket = socket.socket()
    stalled_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled_socket.connect(("127.0.0.1", slow_server.port))
    async with (
        room(slow_server, "lobby", "talker") as talker,
        room(slow_server, "lobby", "stalled", sock=stalled_socket, max_queue=1) as stalled,
    ):
        # `stalled` never reads from here on: its client stops taking bytes off the socket.
        big = base64.b64encode(os.urandom(37_500)).decode()  # 50,000 chars that do not compress
        async with asyncio.timeout(40):
            sent = 0
            while True:
                await talker.send(json.dumps({"message": f"{sent} {big}"}))
                frame = await receive_until(talker, "chat_message")  # the talker keeps up
                assert frame["message"].startswith(f"{sent} ")
                sent += 1
                if sent % 10 == 0:
                    async with httpx.AsyncClient(timeout=5) as http:
                        rooms = (await http.get(f"{slow_server.http_url}/api/rooms")).json()
                    if rooms["rooms"] == [{"name": "lobby", "members": 1}]:
                        break  # the server dropped the stalled member
        assert sent < 1000
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(20):
                while True:
                    await stalled.recv()  # drain what was buffered, then the close frame
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4008
        assert "too slow" in closed.value.rcvd.reason
        # the room still works for the others
        assert (await post(talker, "still fine"))["message"] == "still fine"


async def test_seed_call_sequence_over_real_hypercorn(server: LiveServer) -> None:
    """The workshop's call.js frames between two real websocket clients, then one side
    drops: the other is told at once."""
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    answer = {"type": "answer", "sdp": "v=0\r\n"}
    candidate = {"label": 0, "id": "0", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}

    def frame(kind: str, **data: Any) -> str:
        return json.dumps({"type": kind, "data": data})

    async with (
        connect(f"{server.ws_url}/ws/call/", open_timeout=5) as ada,
        connect(f"{server.ws_url}/ws/call/", open_timeout=5) as bob,
    ):
        for connection, name in ((ada, "ada"), (bob, "bob")):
            assert await receive_json(connection) == {
                "type": "connection",
                "data": {"message": "Connected"},
            }
            await connection.send(frame("login", name=name))
            await receive_until(connection, "logged_in")
        await ada.send(frame("call", name="bob", rtcMessage=offer))
        await ada.send(frame("ICEcandidate", user="bob", rtcMessage=candidate))
        received = await receive_until(bob, "call_received")
        assert received["data"] == {"caller": "ada", "rtcMessage": offer}
        relayed = await receive_until(bob, "ICEcandidate")
        assert relayed["data"] == {"rtcMessage": candidate}
        await bob.send(frame("answer_call", caller="ada", rtcMessage=answer))
        assert (await receive_until(ada, "call_answered"))["data"]["rtcMessage"] == answer
        await bob.close()
        ended = await receive_until(ada, "call_ended")
        assert ended["data"] == {"name": "bob", "reason": "disconnected"}
