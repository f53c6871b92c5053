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

from . import databases
from .browsers import browser, open_tab  # noqa: F401 - fixtures for the browser tests
from .redis_server import RedisServer
from .servers import LiveServer, missing

RECEIVE_TIMEOUT_SECONDS = 5.0


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {"store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"}}


@pytest.fixture(scope="session")
def postgresql_database() -> Iterator[str]:
    """A database of this test session's own on a real PostgreSQL, dropped at the end.

    The server is ``$DATABASE_URL``, else the local one on 127.0.0.1:5432 (user postgres,
    trust auth).  With neither, the tests that need it skip, or fail under CI (``$CI``).
    """
    server = databases.postgres_server()
    if server is None:
        missing("no PostgreSQL: set $DATABASE_URL or run one on 127.0.0.1:5432")
    database = asyncio.run(databases.create_database(server))
    try:
        yield databases.url_text(database)
    finally:
        asyncio.run(databases.drop_database(server, database))


@pytest.fixture
async def postgresql_url(postgresql_database: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    await databases.empty_database(postgresql_database)
    return postgresql_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once for each dialect the store supports."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def app(
    settings_overrides: dict[str, dict[str, Any]], tmp_path: Path
) -> AsyncIterator[Quart]:
    """The app with ``settings_overrides``; a test that overrides other sections still
    gets a database of its own."""
    overrides = {"store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"}}
    overrides.update(settings_overrides)
    application = create_app(overrides)
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
    with LiveServer(tmp_path, env=server_env) as live:
        yield live


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
