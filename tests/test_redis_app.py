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

from quartchat import create_app

from .conftest import receive_until
from .redis_server import RedisServer


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
