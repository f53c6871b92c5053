"""The app with broker.url = redis://: two apps stand for two worker processes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from quartchat import create_app
from quartchat.sockets import PROTOCOL

from .conftest import receive_until
from .redis_server import RedisServer
from .servers import LiveServer


def overrides(tmp_path: Path, broker_url: str) -> dict[str, dict[str, Any]]:
    return {
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"},
        "broker": {"url": broker_url},
    }


@pytest.fixture
async def two_apps(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[Quart, Quart]]:
    """Two apps on one Redis and one database, as two workers of one server."""
    async with AsyncExitStack() as stack:
        apps = [create_app(overrides(tmp_path, redis_url)) for _ in range(2)]
        for app in apps:
            await stack.enter_async_context(app.test_app())
        yield apps[0], apps[1]


async def test_a_message_reaches_a_member_on_the_other_worker(
    two_apps: tuple[Quart, Quart],
) -> None:
    first, second = (app.test_client() for app in two_apps)
    room = f"r-{uuid.uuid4().hex[:12]}"  # the Redis server is shared by every test
    async with (
        first.websocket(f"/ws/room/{room}/ada/") as ada,
        second.websocket(f"/ws/room/{room}/bob/") as bob,
    ):
        await ada.send(json.dumps({"message": "hello from worker one"}))
        for connection in (ada, bob):
            frame = await receive_until(connection, "chat_message")
            assert (frame["user"], frame["message"]) == ("ada", "hello from worker one")


async def test_readyz_follows_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    app = create_app(overrides(tmp_path, redis_server.url))
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/readyz")).status_code == 200
        await asyncio.to_thread(redis_server.stop)
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert (await response.get_json())["broker"].startswith("error: BrokerUnavailable")
        assert (await client.get("/healthz")).status_code == 200  # alive all the same


async def test_a_redis_outage_sends_clients_away_and_they_resume_after_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Sockets are closed with 1013 (what is published meanwhile could not reach them), new
    ones are refused with 503 while Redis is down, and a client coming back resumes from
    the store without a gap."""
    server = LiveServer(tmp_path, env={"QUARTCHAT_BROKER_URL": redis_server.url})
    server.start()
    try:
        room_url = f"{server.ws_url}/ws/room/outage/ada/"
        async with (
            connect(room_url, subprotocols=[PROTOCOL], open_timeout=5) as ada,  # type: ignore[list-item]
            connect(f"{server.ws_url}/ws/call/", open_timeout=5) as caller,
        ):
            await receive_until(ada, "history")
            await ada.send(json.dumps({"message": "before"}))
            before = await receive_until(ada, "chat_message")
            await asyncio.to_thread(redis_server.stop)
            for connection in (ada, caller):
                async with asyncio.timeout(10):
                    await connection.wait_closed()
                assert connection.close_code == 1013
        with pytest.raises(InvalidStatus) as refused:
            await connect(room_url, open_timeout=5)
        assert refused.value.response.status_code == 503
        assert json.loads(refused.value.response.body)["error"] == "unavailable"

        await asyncio.to_thread(redis_server.start)
        async with asyncio.timeout(15):
            while True:  # the broker reconnects with backoff
                try:
                    back = await connect(
                        f"{room_url}?since={before['id']}", subprotocols=[PROTOCOL], open_timeout=5
                    )  # type: ignore[list-item]
                    break
                except InvalidStatus:
                    await asyncio.sleep(0.2)
        async with back:
            history = await receive_until(back, "history")
            assert history["messages"] == []  # nothing was missed: nothing new was stored
            await back.send(json.dumps({"message": "after"}))
            after = await receive_until(back, "chat_message")
            assert after["id"] == before["id"] + 1
    finally:
        server.stop()
