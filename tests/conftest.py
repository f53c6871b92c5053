from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol

from quartchat import create_app

from .browsers import browser, open_tab  # noqa: F401 - fixtures for the browser tests
from .redis_server import RedisServer
from .servers import LiveServer

RECEIVE_TIMEOUT_SECONDS = 5.0


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {"store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"}}


@pytest.fixture
async def app(settings_overrides: dict[str, dict[str, Any]]) -> AsyncIterator[Quart]:
    application = create_app(settings_overrides)
    async with application.test_app():  # runs before_serving / after_serving
        yield application


@pytest.fixture
def client(app: Quart) -> TestClientProtocol:
    return app.test_client()


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment (QUARTCHAT_* settings) for the `server` fixture."""
    return {}


@pytest.fixture
def server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path, env=server_env)
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``$REDIS_URL`` when set, else a private redis-server shared by the session's tests
    (which keep apart by topic names: pub/sub channels are server-wide, not per database)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    redis.start()
    try:
        yield redis.url
    finally:
        redis.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that stop and restart it."""
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def receive_json(connection: Any, timeout: float = RECEIVE_TIMEOUT_SECONDS) -> Any:
    """Next frame of a Quart test websocket or a `websockets` client, as JSON, or fail."""
    async with asyncio.timeout(timeout):
        raw = await (connection.receive() if hasattr(connection, "receive") else connection.recv())
    return json.loads(raw)


async def receive_until(
    connection: Any, event_type: str, timeout: float = RECEIVE_TIMEOUT_SECONDS
) -> Any:
    """Skip frames until one of ``event_type`` arrives."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await receive_json(connection, timeout)
            if frame.get("type") == event_type:
                return frame


async def assert_silent(connection: Any, seconds: float = 0.3) -> None:
    """Fail if any frame arrives within ``seconds``."""
    try:
        frame = await receive_json(connection, seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {frame}")


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, every: float = 0.05
) -> None:
    """Return once ``check()`` is true, asking every ``every`` seconds; fail after ``timeout``
    (for the state of another process, which has no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(every)
