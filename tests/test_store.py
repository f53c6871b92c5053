from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quartchat.store import MessageStore, NewMessage


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"


@pytest.fixture
async def store(url: str) -> AsyncIterator[MessageStore]:
    instance = MessageStore(url)
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


async def test_history_survives_reopen(url: str, store: MessageStore) -> None:
    await store.append_many([NewMessage("a", "ada", "kept")])
    await store.close()
    reopened = MessageStore(url)
    await reopened.open()
    try:
        assert [m.text for m in await reopened.page("a", limit=5)] == ["kept"]
        [next_one] = await reopened.append_many([NewMessage("a", "ada", "next")])
        assert next_one.message.id == 2
    finally:
        await reopened.close()


async def test_ping(store: MessageStore) -> None:
    await store.ping()


async def test_ping_fails_for_unreachable_database(tmp_path: Path) -> None:
    broken = MessageStore(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'chat.db'}")
    with pytest.raises(Exception, match="unable to open database"):
        await broken.ping()
    await broken.close()


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
