"""``/metrics`` on a live server: the counters move by what the clients did."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from quart import Quart
from websockets.asyncio.client import ClientConnection, connect

from quartchat import create_app
from quartchat.sockets import PROTOCOL

from .conftest import eventually, receive_until
from .prometheus import Samples, scrape
from .redis_server import RedisServer
from .servers import LiveServer

OFFER = {"type": "offer", "sdp": "v=0\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\n"}


def frame(kind: str, **data: Any) -> str:
    return json.dumps({"type": kind, "data": data})


async def test_chat_moves_the_message_and_socket_metrics(server: LiveServer) -> None:
    before = await scrape(server.http_url)
    url = f"{server.ws_url}/ws/room/lobby"
    async with (
        connect(f"{url}/ada/", subprotocols=[PROTOCOL], open_timeout=5) as ada,
        connect(f"{url}/bob/", subprotocols=[PROTOCOL], open_timeout=5) as bob,
    ):
        for connection in (ada, bob):
            await receive_until(connection, "history")
        during = await scrape(server.http_url)
        assert during.get("quartchat_open_sockets", kind="room") == 2
        assert during.get("quartchat_rooms_with_members") == 1
        for n in range(3):
            await ada.send(json.dumps({"type": "message", "message": f"m{n}"}))
            for connection in (ada, bob):
                await receive_until(connection, "chat_message")
        after = await scrape(server.http_url)
    assert after.delta(before, "quartchat_chat_messages_accepted_total") == 3
    assert after.delta(before, "quartchat_chat_messages_delivered_total") == 6  # 3 x 2 members
    latency = "quartchat_chat_delivery_latency_seconds"
    assert after.delta(before, f"{latency}_count") == 3  # once per message in one process
    assert 0 < after.delta(before, f"{latency}_sum") < 3 * 5.0
    assert after.get(f"{latency}_bucket", le="+Inf") == after.get(f"{latency}_count")
    assert after.get("quartchat_broker_connected") == 1
    assert after.get("quartchat_broker_reconnects_total") == 0

    async def everyone_left() -> bool:
        now = await scrape(server.http_url)
        return (
            now.get("quartchat_open_sockets", kind="room") == 0
            and now.get("quartchat_rooms_with_members") == 0
        )

    await eventually(everyone_left)


async def log_in(connection: ClientConnection, name: str) -> None:
    await connection.send(frame("login", name=name))
    await receive_until(connection, "logged_in")


async def test_calls_are_counted_once_each(server: LiveServer) -> None:
    before = await scrape(server.http_url)
    async with (
        connect(f"{server.ws_url}/ws/call/", open_timeout=5) as ada,
        connect(f"{server.ws_url}/ws/call/", open_timeout=5) as bob,
    ):
        await log_in(ada, "ada")
        await log_in(bob, "bob")
        assert (await scrape(server.http_url)).get("quartchat_open_sockets", kind="call") == 2
        # answered, then hung up by ada
        await ada.send(frame("call", name="bob", rtcMessage=OFFER))
        await receive_until(bob, "call_received")
        await bob.send(frame("answer_call", caller="ada", rtcMessage=ANSWER))
        await receive_until(ada, "call_answered")
        await ada.send(frame("hangup"))
        for connection in (ada, bob):
            await receive_until(connection, "call_ended")
        # declined by bob
        await ada.send(frame("call", name="bob", rtcMessage=OFFER))
        await receive_until(bob, "call_received")
        await bob.send(frame("decline"))
        for connection in (ada, bob):
            await receive_until(connection, "call_ended")
        # bob's connection drops in the middle of a call
        await ada.send(frame("call", name="bob", rtcMessage=OFFER))
        await receive_until(bob, "call_received")
        await bob.send(frame("answer_call", caller="ada", rtcMessage=ANSWER))
        await receive_until(ada, "call_answered")
        await bob.close()
        await receive_until(ada, "call_ended")
        after = await scrape(server.http_url)
    assert after.delta(before, "quartchat_calls_started_total") == 3
    assert after.delta(before, "quartchat_calls_answered_total") == 2
    ended = "quartchat_calls_ended_total"
    for reason in ("hung_up", "declined", "disconnected"):
        assert after.delta(before, ended, reason=reason) == 1, reason
    assert (
        sum(after.by_label(ended, "reason").values())
        - sum(before.by_label(ended, "reason").values())
        == 3
    )


async def test_broker_reconnects_are_counted(tmp_path: Path, redis_server: RedisServer) -> None:
    app: Quart = create_app(
        {
            "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"},
            "broker": {"url": redis_server.url},
        }
    )
    async with app.test_app():
        client = app.test_client()

        async def metrics() -> Samples:
            return Samples((await (await client.get("/metrics")).get_data()).decode())

        before = await metrics()
        assert before.get("quartchat_broker_connected") == 1
        await asyncio.to_thread(redis_server.stop)

        async def disconnected() -> bool:
            return (await metrics()).get("quartchat_broker_connected") == 0

        await eventually(disconnected)
        await asyncio.to_thread(redis_server.start)

        async def reconnected() -> bool:
            return (await metrics()).get("quartchat_broker_connected") == 1

        await eventually(reconnected, timeout=20)
        after = await metrics()
    assert after.delta(before, "quartchat_broker_reconnects_total") == 1
