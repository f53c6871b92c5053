"""The message store, each test on SQLite and on PostgreSQL (`store_url`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import make_url

from quartchat.store import MessageStore, NewMessage, StoreUnavailable

from . import databases
from .servers import free_port


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[MessageStore]:
    instance = MessageStore(store_url)
    await instance.open()
    try:
        yield instance
    finally:
        await instance.close()


async def test_ids_increase_per_room(store: MessageStore) -> None:
    stored = await store.append_many(
        [NewMessage("a", "ada", "1"), NewMessage("b", "bob", "2"), NewMessage("a", "ada", "3")]
    )
    assert [(a.message.room, a.message.id, a.message.text) for a in stored] == [
        ("a", 1, "1"),
        ("b", 1, "2"),
        ("a", 2, "3"),
    ]
    assert all(a.new for a in stored)
    more = await store.append_many([NewMessage("a", "ada", "4")])
    assert more[0].message.id == 3


async def test_stored_fields_round_trip(store: MessageStore) -> None:
    text = "<img src=x onerror=alert(1)> ünïcødé 🎉\nsecond line"
    [appended] = await store.append_many([NewMessage("a", "Zoë", text, "c-1")])
    stored = appended.message
    assert abs(stored.created_at - datetime.now(UTC)) < timedelta(seconds=5)
    [read] = await store.page("a", limit=10)
    assert read == stored
    assert read.created_at.tzinfo is not None


async def test_pages(store: MessageStore) -> None:
    await store.append_many([NewMessage("a", "ada", str(n)) for n in range(1, 11)])
    assert [m.id for m in await store.page("a", limit=3)] == [8, 9, 10]
    assert [m.id for m in await store.page("a", after=4, limit=3)] == [5, 6, 7]
    assert [m.id for m in await store.page("a", before=4, limit=5)] == [1, 2, 3]
    assert [m.id for m in await store.page("a", after=10, limit=3)] == []
    assert await store.page("nowhere", limit=3) == []


async def test_history_survives_reopen(store_url: str, store: MessageStore) -> None:
    await store.append_many([NewMessage("a", "ada", "kept")])
    await store.close()
    reopened = MessageStore(store_url)
    await reopened.open()
    try:
        assert [m.text for m in await reopened.page("a", limit=5)] == ["kept"]
        [next_one] = await reopened.append_many([NewMessage("a", "ada", "next")])
        assert next_one.message.id == 2
    finally:
        await reopened.close()


async def test_ping(store: MessageStore) -> None:
    await store.ping()


async def test_ping_fails_for_unreachable_sqlite(tmp_path: Path) -> None:
    broken = MessageStore(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'chat.db'}")
    with pytest.raises(StoreUnavailable, match="unable to open database"):
        await broken.ping()
    with pytest.raises(StoreUnavailable, match="unable to open database"):
        await broken.open()
    await broken.close()


async def test_unreachable_postgresql_is_unavailable(postgresql_url: str) -> None:
    nothing_listens = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/quartchat"
    no_such_database = make_url(postgresql_url).set(database="quartchat_missing")
    for url, expected in [
        (nothing_listens, "Connect call failed"),
        (databases.url_text(no_such_database), "does not exist"),
    ]:
        broken = MessageStore(url)
        try:
            for call in (broken.ping, broken.open, broken.revisions):
                with pytest.raises(StoreUnavailable, match=expected):
                    await call()
            with pytest.raises(StoreUnavailable, match=expected):
                await broken.append_many([NewMessage("a", "ada", "lost")])
            with pytest.raises(StoreUnavailable, match=expected):
                await broken.page("a", limit=5)
        finally:
            await broken.close()


async def test_a_postgresql_restart_costs_no_message(postgresql_url: str) -> None:
    store = MessageStore(postgresql_url)
    await store.open()
    try:
        await store.append_many([NewMessage("a", "ada", "before")])
        # What a server restart does to the pooled connections: their backends end.
        await databases.execute(
            postgresql_url,
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        [after] = await store.append_many([NewMessage("a", "ada", "after")])
        assert after.message.id == 2
        await store.ping()
    finally:
        await store.close()


async def test_a_resent_client_id_is_stored_once(store: MessageStore) -> None:
    first = await store.append_many(
        [NewMessage("a", "ada", "hello", "k-1"), NewMessage("a", "ada", "hello", "k-1")]
    )
    assert [(a.message.id, a.new) for a in first] == [(1, True), (1, False)]
    again = await store.append_many(
        [
            NewMessage("a", "ada", "hello", "k-1"),  # resent after a reconnect
            NewMessage("a", "bob", "hi", "k-1"),  # another author's id space
            NewMessage("b", "ada", "elsewhere", "k-1"),  # another room
            NewMessage("a", "ada", "no id"),
        ]
    )
    assert [(a.message.room, a.message.id, a.new) for a in again] == [
        ("a", 1, False),
        ("a", 2, True),
        ("b", 1, True),
        ("a", 3, True),
    ]
    assert [m.text for m in await store.page("a", limit=10)] == ["hello", "hi", "no id"]


async def test_resends_among_many_client_ids_are_each_recognised(store: MessageStore) -> None:
    ids = [f"k-{n}" for n in range(5)]  # looked up by a statement for 8, the last id repeated
    await store.append_many([NewMessage("a", "ada", f"m{n}", i) for n, i in enumerate(ids)])
    resent = [NewMessage("a", "ada", "again", client_id) for client_id in ids[1:4]]
    again = await store.append_many([*resent, NewMessage("a", "ada", "x", "k-9")])
    assert [(a.message.id, a.message.text, a.new) for a in again] == [
        (2, "m1", False),
        (3, "m2", False),
        (4, "m3", False),
        (6, "x", True),
    ]


async def test_a_database_error_makes_the_store_unavailable(store_url: str) -> None:
    """Raised by the driver under the store's own statements, named, and nothing stored."""
    store = MessageStore(store_url)
    await store.open()
    try:
        await store.append_many([NewMessage("a", "ada", "kept")])
        await databases.execute(store_url, "DROP TABLE messages")
        with pytest.raises(StoreUnavailable, match="messages"):
            await store.append_many([NewMessage("a", "ada", "lost")])
        with pytest.raises(StoreUnavailable, match="messages"):
            await store.page("a", limit=10)
    finally:
        await store.close()


async def test_concurrent_stores_hand_out_gapless_ids(store_url: str, store: MessageStore) -> None:
    """Two stores (as two server processes would) writing to the same rooms at once."""
    other = MessageStore(store_url)
    await other.open()
    try:
        batches = [
            [
                NewMessage(room, f"user{n}", f"{n}.{room}.{i}")
                for room in ("ab" if n % 2 else "ba")  # rooms in either order
                for i in range(3)
            ]
            + [NewMessage("b", f"user{n}", f"{n}.b.again", f"k-{n}")]
            for n in range(20)
        ]
        async with asyncio.timeout(30):
            await asyncio.gather(
                *((store if n % 2 else other).append_many(batch) for n, batch in enumerate(batches))
            )
        for room, count in [("a", 60), ("b", 80)]:
            ids = [m.id for m in await store.page(room, limit=100)]
            assert ids == list(range(1, count + 1))
    finally:
        await other.close()
