"""The Redis backend against a real redis-server: several processes, and outages.

Starting and stopping a server blocks, so it runs in a thread: the brokers under test keep
running meanwhile, as they would in a server whose Redis goes away.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from quartchat.broker import Broker, BrokerUnavailable, Subscriber, broker_from_url

from .redis_server import RedisServer

OUTAGE_NOTICED_SECONDS = 5.0  # the pub/sub connection breaks as soon as Redis stops
UNAVAILABLE_WITHIN_SECONDS = 5.0  # publish, subscribe and ping give up within this
RECONNECTED_SECONDS = 15.0  # backoff is capped at 5 s


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:room:a"


@pytest.fixture
async def two_brokers(redis_url: str) -> AsyncIterator[tuple[Broker, Broker]]:
    """Two brokers on one Redis, as in two worker processes."""
    first, second = broker_from_url(redis_url), broker_from_url(redis_url)
    await first.start()
    try:
        await second.start()
        try:
            yield first, second
        finally:
            await second.stop()
    finally:
        await first.stop()


@pytest.fixture
async def broker(redis_server: RedisServer) -> AsyncIterator[Broker]:
    """A broker on a redis-server of this test's own, which the test may stop."""
    instance = broker_from_url(redis_server.url)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def take(subscriber: Subscriber, count: int, timeout: float = 2.0) -> list[str]:
    async with asyncio.timeout(timeout):
        return [(await subscriber.get()).text for _ in range(count)]


async def wait_connected(broker: Broker, connected: bool, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while broker.connected != connected:
            await broker.wait_state_change(not connected)


async def test_two_processes_get_what_either_publishes_in_order(
    two_brokers: tuple[Broker, Broker], topic: str
) -> None:
    first, second = two_brokers
    async with (
        first.subscribe(topic, max_queue=100) as on_first,
        second.subscribe(topic, max_queue=100) as on_second,
    ):
        sent = []
        for n in range(10):
            publisher, name = (first, "first") if n % 2 == 0 else (second, "second")
            await publisher.publish(topic, f"{name}-{n}")
            sent.append(f"{name}-{n}")
        assert await take(on_first, 10) == sent
        assert await take(on_second, 10) == sent


async def test_an_outage_is_reported_then_healed(
    broker: Broker, redis_server: RedisServer, topic: str
) -> None:
    async with broker.subscribe(topic, max_queue=10) as inbox:
        await broker.publish(topic, "before")
        assert await take(inbox, 1) == ["before"]

        await asyncio.to_thread(redis_server.stop)
        await wait_connected(broker, False, OUTAGE_NOTICED_SECONDS)
        async with asyncio.timeout(UNAVAILABLE_WITHIN_SECONDS):
            with pytest.raises(BrokerUnavailable):
                await broker.publish(topic, "during")
            with pytest.raises(BrokerUnavailable):
                await broker.ping()
            with pytest.raises(BrokerUnavailable):
                async with broker.subscribe(f"{topic}:new", max_queue=10):
                    pass

        await asyncio.to_thread(redis_server.start)  # the same port
        await wait_connected(broker, True, RECONNECTED_SECONDS)
        await broker.ping()
        await broker.publish(topic, "after")
        assert await take(inbox, 1) == ["after"]  # subscribed before the outage, still live


async def test_a_restart_between_two_messages_loses_neither(
    broker: Broker, redis_server: RedisServer, topic: str
) -> None:
    """A pooled PUBLISH connection closed by the restart is replaced, not reported."""
    async with broker.subscribe(topic, max_queue=10) as inbox:
        await broker.publish(topic, "one")
        assert await take(inbox, 1) == ["one"]
        # Watching from before the stop: the broker may be back before the restart returns.
        outage = asyncio.create_task(broker.wait_state_change(True))
        try:
            await asyncio.sleep(0)
            await asyncio.to_thread(redis_server.stop)
            await asyncio.to_thread(redis_server.start)
            async with asyncio.timeout(OUTAGE_NOTICED_SECONDS):
                await outage  # False, or True after a flap: either way an outage was seen
        finally:
            outage.cancel()
        await wait_connected(broker, True, RECONNECTED_SECONDS)
        await broker.publish(topic, "two")
        assert await take(inbox, 1) == ["two"]


async def test_starts_while_redis_is_down_and_connects_when_it_is_up(
    tmp_path_factory: pytest.TempPathFactory, topic: str
) -> None:
    redis = RedisServer(tmp_path_factory.mktemp("late-redis"))  # not started yet
    broker = broker_from_url(redis.url)
    try:
        async with asyncio.timeout(UNAVAILABLE_WITHIN_SECONDS):
            await broker.start()
        assert not broker.connected
        with pytest.raises(BrokerUnavailable):
            await broker.ping()
        await asyncio.to_thread(redis.start)
        await wait_connected(broker, True, RECONNECTED_SECONDS)
        async with broker.subscribe(topic, max_queue=10) as inbox:
            await broker.publish(topic, "hello")
            assert await take(inbox, 1) == ["hello"]
    finally:
        await broker.stop()
        await asyncio.to_thread(redis.stop)


async def test_unsubscribing_during_an_outage_is_quiet(
    broker: Broker, redis_server: RedisServer, topic: str
) -> None:
    async with broker.subscribe(topic, max_queue=10):
        await asyncio.to_thread(redis_server.stop)
        await wait_connected(broker, False, OUTAGE_NOTICED_SECONDS)
    # Leaving raised nothing; once Redis is back, the topic is not subscribed again.
    await asyncio.to_thread(redis_server.start)
    await wait_connected(broker, True, RECONNECTED_SECONDS)
    async with broker.subscribe(topic, max_queue=10) as inbox:
        await broker.publish(topic, "fresh")
        assert await take(inbox, 1) == ["fresh"]


async def test_a_burst_of_publishes_beyond_the_connection_pool_waits_its_turn(
    two_brokers: tuple[Broker, Broker], topic: str
) -> None:
    """500 publishes at once (a busy room, or everyone's status after a call) all go out:
    beyond the pool's connections they queue, where redis-py's default pool refused
    the 101st with "Too many connections"."""
    publisher, receiver = two_brokers
    async with receiver.subscribe(topic, max_queue=1000) as inbox:
        await asyncio.gather(*(publisher.publish(topic, f"m{n}") for n in range(500)))
        received = await take(inbox, 500, timeout=10)
    assert sorted(received) == sorted(f"m{n}" for n in range(500))
