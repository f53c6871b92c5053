"""The Redis backend (also Valkey): one pub/sub connection per process carries every topic.

Channels are the topic names behind a prefix (the app's namespace); the text is published as
it is.  A reader task owns the pub/sub connection's input: it queues messages for
:meth:`RedisBackend.next_published` and settles the waits of :meth:`RedisBackend.subscribe`
when Redis confirms a subscription.
PUBLISH and PING go through a separate client, which retries a command once on a new
connection (a pooled one may have been closed by a Redis restart or an idle timeout).  The
pub/sub client does not retry: redis-py would reconnect it silently, hiding the messages lost
meanwhile; instead the reader reports the loss and the :class:`~.Broker` reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ..aio import cancel_and_wait
from .base import BrokerUnavailable, Published

CONNECT_TIMEOUT_SECONDS = 2.0
# Bounds publish, ping, the wait for a confirmation and the wait for a pooled connection.  A
# refused or reset connection fails at once; this only catches a Redis that hangs, so it is
# generous: on a saturated host a command can queue for seconds, which is no outage, and
# failing it would drop a user's message or call frame.
COMMAND_TIMEOUT_SECONDS = 10.0
POOL_CONNECTIONS = 32  # per client, per process: enough to keep one Redis busy

_UNREACHABLE = (RedisError, OSError, TimeoutError)


class RedisBackend:
    """Pub/sub on a Redis server given by a ``redis://`` or ``rediss://`` URL."""

    def __init__(self, url: str, prefix: str = "") -> None:
        self._url = url
        self._prefix = prefix  # channel = prefix + topic
        self._client: Redis | None = None  # PUBLISH and PING
        self._listening: Redis | None = None  # makes the pub/sub connections
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._published: asyncio.Queue[Published | BrokerUnavailable] = asyncio.Queue()
        self._confirming: dict[str, list[asyncio.Future[None]]] = {}

    async def connect(self) -> None:
        await self._close_pubsub()  # what is left of a lost connection
        if self._client is None or self._listening is None:
            self._client = _make_client(self._url, retries=1)
            self._listening = _make_client(self._url, retries=0)
        pubsub = self._listening.pubsub()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await pubsub.connect()  # type: ignore[no-untyped-call]
        except _UNREACHABLE as error:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise BrokerUnavailable(f"cannot connect to Redis: {error}") from error
        self._pubsub = pubsub
        self._published = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(pubsub), name="redis-reader")

    async def disconnect(self) -> None:
        await self._close_pubsub()
        for client in (self._client, self._listening):
            if client is not None:
                await client.aclose()
        self._client = self._listening = None

    async def subscribe(self, topic: str) -> None:
        pubsub = self._live_pubsub(f"cannot subscribe to {topic!r}")
        confirmed = asyncio.get_running_loop().create_future()
        waiting = self._confirming.setdefault(topic, [])
        waiting.append(confirmed)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                await pubsub.subscribe(self._prefix + topic)
                await confirmed  # settled by the reader
        except _UNREACHABLE as error:
            raise BrokerUnavailable(f"cannot subscribe to {topic!r}: {error}") from error
        finally:
            if confirmed in waiting:
                waiting.remove(confirmed)
            if not waiting and self._confirming.get(topic) is waiting:
                del self._confirming[topic]

    async def unsubscribe(self, topic: str) -> None:
        pubsub = self._live_pubsub(f"cannot unsubscribe from {topic!r}")
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                await pubsub.unsubscribe(self._prefix + topic)
        except _UNREACHABLE as error:
            raise BrokerUnavailable(f"cannot unsubscribe from {topic!r}: {error}") from error

    async def publish(self, topic: str, text: str) -> None:
        if self._client is None:
            raise BrokerUnavailable(f"cannot publish to {topic!r}: not connected")
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                await self._client.publish(self._prefix + topic, text)
        except _UNREACHABLE as error:
            raise BrokerUnavailable(f"cannot publish to {topic!r}: {error}") from error

    async def next_published(self) -> Published:
        item = await self._published.get()
        if isinstance(item, BrokerUnavailable):
            raise item
        return item

    async def ping(self) -> None:
        if self._client is None:
            raise BrokerUnavailable("not connected to Redis")
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                await self._client.ping()
        except _UNREACHABLE as error:
            raise BrokerUnavailable(f"Redis does not answer: {error}") from error

    def _live_pubsub(self, doing: str) -> PubSub:
        if self._pubsub is None or self._reader is None or self._reader.done():
            raise BrokerUnavailable(f"{doing}: the Redis connection is lost")
        return self._pubsub

    async def _read(self, pubsub: PubSub) -> None:
        """Queue messages and settle confirmations until the connection fails; then queue
        the failure, after the messages received before it."""
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                if message["type"] == "message":
                    topic = message["channel"][len(self._prefix) :]
                    self._published.put_nowait(Published(topic, message["data"]))
                elif message["type"] == "subscribe":
                    self._confirm(message["channel"][len(self._prefix) :])
        except asyncio.CancelledError:
            raise
        except Exception as error:  # whatever broke the connection, the broker reconnects
            lost = BrokerUnavailable(f"lost the Redis connection: {error}")
            for waiting in self._confirming.values():
                for confirmed in waiting:
                    if not confirmed.done():
                        confirmed.set_exception(lost)
            self._published.put_nowait(lost)

    def _confirm(self, topic: str) -> None:
        waiting = self._confirming.get(topic)
        if waiting:
            confirmed = waiting.pop(0)
            if not confirmed.done():
                confirmed.set_result(None)

    async def _close_pubsub(self) -> None:
        await cancel_and_wait(self._reader)
        self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None


# Opens a Lua script of the shared state: `now` is Redis's clock in milliseconds, so the
# hosts' own clocks do not have to agree on lease expiries.
LUA_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""


def shared_state_client(url: str) -> Redis:
    """A client (replies as text) for the state kept in Redis beside pub/sub: presence, the
    call directory; run their scripts with :func:`run_script`."""
    return _make_client(url, retries=1)


async def run_script(
    script: AsyncScript, keys: list[str], args: Sequence[Any] = (), doing: str = "shared state"
) -> Any:
    with unavailable_on_failure(doing):
        return await script(keys, list(args))


@contextmanager
def unavailable_on_failure(doing: str) -> Iterator[None]:
    """Turn Redis failures into :class:`BrokerUnavailable`, as the broker itself does."""
    try:
        yield
    except _UNREACHABLE as error:
        raise BrokerUnavailable(f"{doing}: {error}") from error


def _make_client(url: str, retries: int) -> Redis:
    """A client whose commands queue for one of :data:`POOL_CONNECTIONS` connections
    (redis-py's default pool fails a command at once beyond its 100th concurrent one:
    "Too many connections", which a busy process reaches when a room or the call directory
    gets a burst)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_CONNECTIONS,
        timeout=COMMAND_TIMEOUT_SECONDS,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), retries),
    )
    return Redis.from_pool(pool)
