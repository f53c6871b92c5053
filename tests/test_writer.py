"""The group-committing writer, each test on SQLite and on PostgreSQL (`store_url`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from quartchat.broker import Broker, MemoryBackend, broker_from_url
from quartchat.chat.writer import ChatWriter
from quartchat.store import Appended, MessageStore, NewMessage, StoreUnavailable
from quartchat.topics import room_topic


class CountingStore(MessageStore):
    """The real store, recording the size of every transaction."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[int] = []

    async def append_many(self, batch: Sequence[NewMessage]) -> list[Appended]:
        self.batches.append(len(batch))
        return await super().append_many(batch)


@pytest.fixture
async def parts(store_url: str) -> AsyncIterator[tuple[CountingStore, Broker, ChatWriter]]:
    store, broker = CountingStore(store_url), broker_from_url("memory://")
    await store.open()
    await broker.start()
    writer = ChatWriter(store, broker, batch_max=64)
    await writer.start()
    try:
        yield store, broker, writer
    finally:
        await writer.stop()
        await broker.stop()
        await store.close()


async def test_concurrent_posts_are_group_committed_and_published_in_id_order(
    parts: tuple[CountingStore, Broker, ChatWriter],
) -> None:
    store, broker, writer = parts
    async with broker.subscribe(room_topic("a"), max_queue=1000) as inbox:
        posted = await asyncio.gather(
            *(writer.post(NewMessage("a", f"user{n}", f"message {n}")) for n in range(100))
        )
        async with asyncio.timeout(5):
            published = [json.loads((await inbox.get()).text) for _ in range(100)]
    assert sorted(message.id for message in posted) == list(range(1, 101))
    assert [event["id"] for event in published] == list(range(1, 101))
    assert sum(store.batches) == 100
    assert len(store.batches) < 100  # batched: fewer transactions than messages
    assert [m.id for m in await store.page("a", limit=200)] == list(range(1, 101))


async def test_post_returns_after_the_message_is_stored(
    parts: tuple[CountingStore, Broker, ChatWriter],
) -> None:
    store, _, writer = parts
    stored = await writer.post(NewMessage("a", "ada", "durable", "c-7"))
    assert await store.page("a", limit=5) == [stored]


async def test_failed_store_means_not_published(
    parts: tuple[CountingStore, Broker, ChatWriter], store_url: str
) -> None:
    _, broker, writer = parts
    engine = create_async_engine(store_url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE messages"))
    await engine.dispose()
    async with broker.subscribe(room_topic("a"), max_queue=10) as inbox:
        with pytest.raises(StoreUnavailable):
            await writer.post(NewMessage("a", "ada", "lost?"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await inbox.get()
    assert writer.running()  # the writer survives and serves later posts


async def test_a_resend_is_not_published_again(
    parts: tuple[CountingStore, Broker, ChatWriter],
) -> None:
    _, broker, writer = parts
    async with broker.subscribe(room_topic("a"), max_queue=10) as inbox:
        first = await writer.post(NewMessage("a", "ada", "once", "k-9"))
        again = await writer.post(NewMessage("a", "ada", "once", "k-9"))
        assert again == first
        async with asyncio.timeout(2):
            assert json.loads((await inbox.get()).text)["client_id"] == "k-9"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await inbox.get()


async def test_one_unstorable_message_fails_alone(
    parts: tuple[CountingStore, Broker, ChatWriter],
) -> None:
    store, _, writer = parts
    posts = [
        writer.post(NewMessage("a", "ada", "fine 1")),
        writer.post(NewMessage("a", "eve", "lone \ud800 surrogate")),  # no database encodes it
        writer.post(NewMessage("a", "bob", "fine 2")),
    ]
    results = await asyncio.gather(*posts, return_exceptions=True)
    assert isinstance(results[1], StoreUnavailable)
    assert [m.text for m in await store.page("a", limit=10)] == ["fine 1", "fine 2"]
    assert writer.running()


class FlakyBroker(Broker):
    """The real memory broker, whose next publish fails once."""

    fail_next = False

    async def publish(self, topic: str, text: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("broker went away")
        await super().publish(topic, text)


async def test_a_failed_publish_does_not_stop_the_writer(store_url: str) -> None:
    store = MessageStore(store_url)
    broker = FlakyBroker(MemoryBackend())
    await store.open()
    await broker.start()
    writer = ChatWriter(store, broker, batch_max=8)
    await writer.start()
    try:
        broker.fail_next = True
        first = await writer.post(NewMessage("a", "ada", "stored, not relayed live"))
        second = await writer.post(NewMessage("a", "ada", "relayed"))
        assert (first.id, second.id) == (1, 2)
        assert writer.running()
    finally:
        await writer.stop()
        await broker.stop()
        await store.close()
    with pytest.raises(StoreUnavailable, match="not running"):
        await writer.post(NewMessage("a", "ada", "after stop"))
