"""Contract tests for the broker, run against every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from quartchat.broker import Broker, broker_from_url

BACKEND_URLS = ["memory://"]


@pytest.fixture(params=BACKEND_URLS)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    instance = broker_from_url(request.param)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def next_text(subscriber, timeout: float = 2.0) -> str:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        return await subscriber.get()


async def test_every_subscriber_gets_the_same_text_in_order(broker: Broker) -> None:
    async with (
        broker.subscribe("room:a", max_queue=10) as first,
        broker.subscribe("room:a", max_queue=10) as second,
    ):
        for n in range(5):
            await broker.publish("room:a", f"m{n}")
        got_first = [await next_text(first) for _ in range(5)]
        got_second = [await next_text(second) for _ in range(5)]
    assert got_first == got_second == [f"m{n}" for n in range(5)]
    assert all(a is b for a, b in zip(got_first, got_second, strict=True))  # encoded once


async def test_topics_are_isolated(broker: Broker) -> None:
    async with (
        broker.subscribe("room:a", max_queue=10) as a,
        broker.subscribe("room:b", max_queue=10) as b,
    ):
        await broker.publish("room:b", "for b")
        assert await next_text(b) == "for b"
        with pytest.raises(TimeoutError):
            await next_text(a, timeout=0.2)


async def test_one_subscriber_many_topics(broker: Broker) -> None:
    async with broker.subscribe("room:a", "user:ada", max_queue=10) as inbox:
        await broker.publish("user:ada", "direct")
        await broker.publish("room:a", "room")
        assert {await next_text(inbox), await next_text(inbox)} == {"direct", "room"}


async def test_unsubscribed_on_exit(broker: Broker) -> None:
    async with broker.subscribe("room:a", max_queue=10) as inbox:
        pass
    await broker.publish("room:a", "nobody")
    async with broker.subscribe("room:a", max_queue=10) as later:
        await broker.publish("room:a", "fresh")
        assert await next_text(later) == "fresh"  # the earlier message was not kept for it
    assert inbox.topics == set()
    with pytest.raises(TimeoutError):
        await next_text(inbox, timeout=0.2)  # nothing reached the closed inbox


async def test_overflow_marks_slow_consumer_without_blocking_others(broker: Broker) -> None:
    async with (
        broker.subscribe("room:a", max_queue=2) as slow,
        broker.subscribe("room:a", max_queue=100) as fast,
    ):
        for n in range(5):
            await broker.publish("room:a", f"m{n}")
        assert [await next_text(fast) for _ in range(5)] == [f"m{n}" for n in range(5)]
        async with asyncio.timeout(2):
            await slow.overflowed()
        assert [await next_text(slow) for _ in range(2)] == ["m0", "m1"]  # the rest was dropped


async def test_publish_without_subscribers_is_fine(broker: Broker) -> None:
    await broker.publish("room:empty", "lost in space")
    await broker.ping()
