"""Contract tests for the broker, run against every backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from quartchat.broker import Broker, Frame, RedisBackend, Subscriber, broker_from_url

BACKENDS = ["memory", "redis"]


@pytest.fixture(params=BACKENDS)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else "memory://"
    instance = broker_from_url(url)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
def topic() -> Callable[[str], str]:
    """Topic names of this test only (a Redis server is shared by every test)."""
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    return lambda name: prefix + name


async def next_frame(subscriber: Subscriber, timeout: float = 2.0) -> Frame:
    async with asyncio.timeout(timeout):
        return await subscriber.get()


async def next_text(subscriber: Subscriber, timeout: float = 2.0) -> str:
    return (await next_frame(subscriber, timeout)).text


async def test_every_subscriber_gets_the_same_text_in_order(
    broker: Broker, topic: Callable[[str], str]
) -> None:
    async with (
        broker.subscribe(topic("room:a"), max_queue=10) as first,
        broker.subscribe(topic("room:a"), max_queue=10) as second,
    ):
        for n in range(5):
            await broker.publish(topic("room:a"), f"m{n}")
        got_first = [await next_frame(first) for _ in range(5)]
        got_second = [await next_frame(second) for _ in range(5)]
    assert [frame.text for frame in got_first] == [f"m{n}" for n in range(5)]
    # Prepared once per process: one frame, so one text and one ASGI event, for everyone.
    assert all(a is b for a, b in zip(got_first, got_second, strict=True))


async def test_subscription_is_live_on_return(broker: Broker, topic: Callable[[str], str]) -> None:
    for n in range(3):  # a fresh topic each time: every subscribe reaches the engine
        async with broker.subscribe(topic(f"room:{n}"), max_queue=10) as inbox:
            await broker.publish(topic(f"room:{n}"), "right after")
            assert await next_text(inbox) == "right after"


async def test_topics_are_isolated(broker: Broker, topic: Callable[[str], str]) -> None:
    async with (
        broker.subscribe(topic("room:a"), max_queue=10) as a,
        broker.subscribe(topic("room:b"), max_queue=10) as b,
    ):
        await broker.publish(topic("room:b"), "for b")
        assert await next_text(b) == "for b"
        with pytest.raises(TimeoutError):
            await next_text(a, timeout=0.2)


async def test_one_subscriber_many_topics(broker: Broker, topic: Callable[[str], str]) -> None:
    async with broker.subscribe(topic("room:a"), topic("user:ada"), max_queue=10) as inbox:
        await broker.publish(topic("user:ada"), "direct")
        await broker.publish(topic("room:a"), "room")
        assert {await next_text(inbox), await next_text(inbox)} == {"direct", "room"}


async def test_unsubscribed_on_exit(broker: Broker, topic: Callable[[str], str]) -> None:
    async with broker.subscribe(topic("room:a"), max_queue=10) as inbox:
        pass
    await broker.publish(topic("room:a"), "nobody")
    async with broker.subscribe(topic("room:a"), max_queue=10) as later:
        await broker.publish(topic("room:a"), "fresh")
        assert await next_text(later) == "fresh"  # the earlier message was not kept for it
    assert inbox.topics == []
    with pytest.raises(TimeoutError):
        await next_text(inbox, timeout=0.2)  # nothing reached the closed inbox


async def test_overflow_marks_slow_consumer_without_blocking_others(
    broker: Broker, topic: Callable[[str], str]
) -> None:
    async with (
        broker.subscribe(topic("room:a"), max_queue=2) as slow,
        broker.subscribe(topic("room:a"), max_queue=100) as fast,
    ):
        told: list[bool] = []
        slow.on_overflow = lambda: told.append(slow.overflowed)
        for n in range(5):
            await broker.publish(topic("room:a"), f"m{n}")
        assert [await next_text(fast) for _ in range(5)] == [f"m{n}" for n in range(5)]
        assert told == [True]  # once, at the third message
        assert [await next_text(slow) for _ in range(2)] == ["m0", "m1"]  # the rest was dropped


async def test_a_conflating_inbox_keeps_the_latest_state_and_bounds_the_rest(
    broker: Broker, topic: Callable[[str], str]
) -> None:
    def key(text: str) -> str | None:  # "state:<who>=<value>" is state; anything else is not
        return text.partition("=")[0] if text.startswith("state:") else None

    async with broker.subscribe(topic("directory"), max_queue=2, conflate=key) as inbox:
        for n in range(50):  # far more changes than the bound
            await broker.publish(topic("directory"), f"state:ada={n}")
            await broker.publish(topic("directory"), f"state:bob={n}")
        await broker.publish(topic("directory"), "event 1")
        await broker.publish(topic("directory"), "state:ada=last")
        await broker.publish(topic("directory"), "event 2")
        async with asyncio.timeout(5):
            while not inbox._items or inbox._items[-1].text != "event 2":  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # (an inbox has no event to wait on: all of it queued)
        assert not inbox.overflowed
        texts = [frame.text for frame in await inbox.get_all()]
        assert texts == ["state:bob=49", "event 1", "state:ada=last", "event 2"]
        await broker.publish(topic("directory"), "state:ada=again")  # a new batch: kept
        for n in range(3):
            await broker.publish(topic("directory"), f"event {n + 3}")
        async with asyncio.timeout(5):
            while not inbox.overflowed:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        texts = [frame.text for frame in await inbox.get_all()]
        assert texts == ["state:ada=again", "event 3", "event 4"]  # the third event overflowed


async def test_publish_without_subscribers_is_fine(
    broker: Broker, topic: Callable[[str], str]
) -> None:
    await broker.publish(topic("room:empty"), "lost in space")
    await broker.ping()


async def test_connected_from_start_to_stop(broker: Broker) -> None:
    assert broker.connected
    async with asyncio.timeout(2):
        waiting = asyncio.create_task(broker.wait_state_change(True))
        await asyncio.sleep(0)
        assert not waiting.done()  # nothing changes while connected
        await broker.stop()
        assert await waiting is False
    assert not broker.connected


def test_broker_urls_choose_the_backend() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://cache.example:6380/1"):
        assert isinstance(broker_from_url(url)._backend, RedisBackend)
    with pytest.raises(ValueError, match="redis://"):
        broker_from_url("amqp://rabbit")
