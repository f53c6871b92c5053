"""Two quartchat processes (real Hypercorn) sharing one Redis and one PostgreSQL: chat,
presence, room counts and calls behave as on one process; a killed process's people drop
out within the lease, and its clients resume on the other without loss."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from quartchat.sockets import PROTOCOL

from .clients import call_frame, chat, chat_at_once
from .conftest import receive_json, receive_until
from .servers import LiveServer, server_pair

LEASE_SECONDS = 2.0


@pytest.fixture
def pair_env() -> dict[str, str]:
    """More settings for both processes of `pair`."""
    return {}


@pytest.fixture
def pair(
    tmp_path: Path, redis_url: str, postgresql_url: str, pair_env: dict[str, str]
) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = {
        **pair_env,
        "QUARTCHAT_BROKER_URL": redis_url,
        "QUARTCHAT_BROKER_NAMESPACE": f"test-{uuid.uuid4().hex[:12]}",
        "QUARTCHAT_BROKER_LEASE_SECONDS": str(LEASE_SECONDS),
        "QUARTCHAT_STORE_URL": postgresql_url,
        "QUARTCHAT_LIMITS_RATE_BURST": "100",
    }
    with server_pair(tmp_path, env) as servers:
        yield servers


def room(server: LiveServer, name: str, user: str, since: int | None = None) -> Any:
    query = "" if since is None else f"?since={since}"
    url = f"{server.ws_url}/ws/room/{name}/{user}/{query}"
    return connect(url, subprotocols=[PROTOCOL], open_timeout=5)  # type: ignore[list-item]


async def entered(connection: ClientConnection) -> dict[str, Any]:
    presence: dict[str, Any] = await receive_until(connection, "presence")
    await receive_until(connection, "history")
    return presence


async def test_chat_across_processes_reaches_everyone_once_in_one_order(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    async with room(a, "ops", "ada") as ada, room(b, "ops", "bob") as bob:
        await entered(ada)
        presence = await entered(bob)
        assert presence["members"] == ["ada", "bob"]  # ada is on the other process
        await chat_at_once(ada, bob, each=20)


async def test_presence_and_room_counts_agree_across_processes(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    async with (
        room(a, "lobby", "ada") as ada,
        room(b, "lobby", "bob") as bob,
        room(b, "quiet", "cy") as cy,
        room(a, "lobby", "bob") as bob_again,  # bob's second tab, on the other process
    ):
        for connection in (ada, bob, cy, bob_again):
            await entered(connection)
        async with httpx.AsyncClient(timeout=5) as http:
            for server in pair:
                rooms = (await http.get(f"{server.http_url}/api/rooms")).json()["rooms"]
                assert rooms == [{"name": "lobby", "members": 2}, {"name": "quiet", "members": 1}]
        await bob.send(json.dumps({"type": "typing"}))  # from B, seen on A
        assert (await receive_until(ada, "typing"))["user"] == "bob"
        await bob_again.close()  # bob's other tab is still open: bob stays
        async with room(b, "lobby", "dee") as dee:
            assert (await entered(dee))["members"] == ["ada", "bob", "dee"]
            while (frame := await receive_json(ada))["type"] != "member_joined":
                assert frame["type"] != "member_left", frame
            assert frame["user"] == "dee"


async def logged_in(server: LiveServer, name: str) -> ClientConnection:
    connection = await connect(f"{server.ws_url}/ws/call/", open_timeout=5)
    await receive_until(connection, "connection")
    await connection.send(call_frame("login", name=name))
    await receive_until(connection, "logged_in")
    return connection


async def test_a_call_between_users_on_different_processes(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    offer, answer = {"type": "offer", "sdp": "v=0\r\n"}, {"type": "answer", "sdp": "v=0\r\n"}
    candidate = {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0"}
    ada, bob, eve = await logged_in(a, "ada"), await logged_in(b, "bob"), await logged_in(a, "eve")
    try:
        name_taken = await connect(f"{b.ws_url}/ws/call/", open_timeout=5)
        await receive_until(name_taken, "connection")
        await name_taken.send(call_frame("login", name="ada"))  # ada is logged in on A
        assert (await receive_until(name_taken, "error"))["data"]["code"] == "name_taken"
        await name_taken.close()

        await ada.send(call_frame("call", name="bob", rtcMessage=offer))
        assert (await receive_until(bob, "call_received"))["data"]["caller"] == "ada"
        assert (await receive_until(ada, "ringing"))["data"] == {"name": "bob"}
        await eve.send(call_frame("call", name="bob", rtcMessage=offer))
        assert (await receive_until(eve, "busy"))["data"] == {"name": "bob"}
        await bob.send(call_frame("answer_call", caller="ada", rtcMessage=answer))
        assert (await receive_until(ada, "call_answered"))["data"]["rtcMessage"] == answer
        await bob.send(call_frame("ICEcandidate", user="ada", rtcMessage=candidate))
        assert (await receive_until(ada, "ICEcandidate"))["data"] == {"rtcMessage": candidate}
        await ada.send(call_frame("hangup"))
        for connection, other in ((ada, "bob"), (bob, "ada")):
            ended = await receive_until(connection, "call_ended")
            assert ended["data"] == {"name": other, "reason": "hung_up"}
    finally:
        for connection in (ada, bob, eve):
            await connection.close()


async def test_a_killed_process_drops_out_and_its_clients_resume_on_the_other(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    ada_call, bob_call = await logged_in(a, "ada"), await logged_in(b, "bob")
    ada_room = await room(a, "ops", "ada")
    try:
        async with room(b, "ops", "bob") as bob_room:
            await entered(ada_room)
            await entered(bob_room)
            await ada_room.send(json.dumps({"message": "before"}))
            [(last_id, _)] = await chat(ada_room, 1)
            await ada_call.send(call_frame("call", name="bob", rtcMessage={"type": "offer"}))
            await bob_call.send(
                call_frame("answer_call", caller="ada", rtcMessage={"type": "answer"})
            )
            await receive_until(bob_call, "call_received")

            a.kill()  # no goodbye from A: its leases simply stop being renewed
            await bob_room.send(json.dumps({"message": "while ada was away"}))
            async with asyncio.timeout(LEASE_SECONDS * 3):
                left = await receive_until(bob_room, "member_left", timeout=LEASE_SECONDS * 3)
                assert left["user"] == "ada"
                ended = await receive_until(bob_call, "call_ended", timeout=LEASE_SECONDS * 3)
                assert ended["data"] == {"name": "ada", "reason": "disconnected"}
            async with httpx.AsyncClient(timeout=5) as http:
                rooms = (await http.get(f"{b.http_url}/api/rooms")).json()["rooms"]
            assert rooms == [{"name": "ops", "members": 1}]

            async with room(b, "ops", "ada", since=last_id) as resumed:  # ada's page reconnects
                history = await receive_until(resumed, "history")
                assert [m["message"] for m in history["messages"]] == ["while ada was away"]
                assert history["messages"][0]["id"] == last_id + 1
    finally:
        for connection in (ada_call, bob_call, ada_room):
            await connection.close()


async def test_a_reload_reclaims_the_call_name_on_another_process(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    """The session key is shared through Redis: a cookie from A's page is valid on B, so
    the same browser landing on B takes its name over from its stale connection on A."""
    a, b = pair
    async with httpx.AsyncClient(timeout=5) as http:
        cookie = (await http.get(f"{a.http_url}/call")).headers["set-cookie"].split(";")[0]
    headers = {"Cookie": cookie, "Origin": a.http_url}
    stale = await connect(f"{a.ws_url}/ws/call/", additional_headers=headers, open_timeout=5)
    try:
        await receive_until(stale, "connection")
        await stale.send(call_frame("login", name="ada"))
        await receive_until(stale, "logged_in")
        headers = {"Cookie": cookie, "Origin": b.http_url}
        fresh = await connect(f"{b.ws_url}/ws/call/", additional_headers=headers, open_timeout=5)
        async with fresh:
            await receive_until(fresh, "connection")
            await fresh.send(call_frame("login", name="ada"))
            await receive_until(fresh, "logged_in")
            assert (await receive_until(stale, "error"))["data"]["code"] == "replaced"
            async with asyncio.timeout(5):
                await stale.wait_closed()
            assert stale.close_code == 4009
    finally:
        await stale.close()


@pytest.mark.parametrize("pair_env", [{"QUARTCHAT_CALL_RING_TIMEOUT_SECONDS": "1.5"}])
async def test_an_unanswered_call_across_processes_times_out_on_both(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    ada, bob = await logged_in(a, "ada"), await logged_in(b, "bob")
    try:
        await ada.send(call_frame("call", name="bob", rtcMessage={"type": "offer", "sdp": ""}))
        await receive_until(bob, "call_received")
        for connection, other in ((ada, "bob"), (bob, "ada")):
            ended = await receive_until(connection, "call_ended")
            assert ended["data"] == {"name": other, "reason": "no_answer"}
    finally:
        for connection in (ada, bob):
            await connection.close()
