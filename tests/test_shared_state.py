"""Room presence and the call directory: the same contract in one process and shared
through a real Redis by several processes, where what a dead process held runs out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from quartchat.broker.redis import shared_state_client
from quartchat.call.directory import Directory, LocalDirectory
from quartchat.call.redis_directory import RedisDirectory
from quartchat.chat.presence import LocalPresence, Presence
from quartchat.chat.redis_presence import RedisPresence

LEASE = 1.0  # seconds; the shortest the settings allow


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = shared_state_client(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", "redis"])
def make_presence(request: pytest.FixtureRequest, namespace: str) -> Callable[[], Presence]:
    """Presences of "processes" that share state (one instance when local)."""
    if request.param == "local":
        shared = LocalPresence()
        return lambda: shared
    redis = request.getfixturevalue("redis")
    return lambda: RedisPresence(redis, namespace, uuid.uuid4().hex, LEASE)


@pytest.fixture(params=["local", "redis"])
def make_directory(request: pytest.FixtureRequest, namespace: str) -> Callable[[], Directory]:
    if request.param == "local":
        shared = LocalDirectory()
        return lambda: shared
    redis = request.getfixturevalue("redis")
    return lambda: RedisDirectory(redis, namespace, LEASE)


# -- presence ------------------------------------------------------------------------------


async def test_a_person_joins_once_and_leaves_with_the_last_socket(
    make_presence: Callable[[], Presence],
) -> None:
    first, second = make_presence(), make_presence()
    assert await first.join("lobby", "ada") is True
    assert await second.join("lobby", "ada") is False  # another tab, maybe another host
    assert await first.join("lobby", "ada") is False
    assert await second.join("lobby", "Bob") is True
    assert await first.join("quiet", "cy") is True
    assert await first.members("lobby") == ["ada", "Bob"]
    assert await second.rooms() == [("lobby", 2), ("quiet", 1)]
    assert await first.leave("lobby", "ada") is False
    assert await second.leave("lobby", "ada") is False
    assert await first.leave("lobby", "ada") is True
    assert await second.members("lobby") == ["Bob"]
    assert await first.leave("lobby", "nobody") is False


async def test_members_of_a_dead_process_run_out_and_are_swept_once(
    redis: Redis, namespace: str
) -> None:
    alive = RedisPresence(redis, namespace, "alive", LEASE)
    dead = RedisPresence(redis, namespace, "dead", LEASE)
    await alive.join("lobby", "ada")
    await dead.join("lobby", "bob")
    await dead.join("lobby", "ada")  # ada also had a tab on the dead process
    for _ in range(5):  # the live one renews, the dead one does not
        await alive.renew()
        await asyncio.sleep(LEASE / 3)
    assert await alive.members("lobby") == ["ada"]
    assert await alive.rooms() == [("lobby", 1)]
    assert await alive.sweep() == [("lobby", "bob")]  # ada is still here
    assert await alive.sweep() == []
    assert await RedisPresence(redis, namespace, "other", LEASE).sweep() == []


async def test_a_room_of_only_dead_members_disappears(redis: Redis, namespace: str) -> None:
    dead = RedisPresence(redis, namespace, "dead", LEASE)
    await dead.join("gone", "zed")
    await asyncio.sleep(LEASE + 0.2)
    sweeper = RedisPresence(redis, namespace, "sweeper", LEASE)
    assert await sweeper.rooms() == []
    assert await sweeper.sweep() == [("gone", "zed")]
    assert await redis.zcard(f"{namespace}:rooms") == 0


# -- directory -----------------------------------------------------------------------------


async def test_one_holder_per_name_and_the_same_browser_takes_over(
    make_directory: Callable[[], Directory],
) -> None:
    first, second = make_directory(), make_directory()
    granted = await first.claim("ada", "sid-1", "laptop")
    assert (granted.granted, granted.replaced_sid) == (True, None)
    assert (await second.claim("ada", "sid-2", "phone")).granted is False
    assert (await second.claim("ada", "sid-2", None)).granted is False
    again = await second.claim("ada", "sid-3", "laptop")
    assert (again.granted, again.replaced_sid) == (True, "sid-1")
    assert await first.release("ada", "sid-1") is False  # no longer its holder
    assert await first.set_status("ada", "sid-1", "busy") is False
    assert await second.set_status("ada", "sid-3", "busy") is True
    assert await second.set_status("ada", "sid-3", "busy") is False
    in_call = await first.claim("ada", "sid-5", "laptop")  # a second tab, mid-call
    assert (in_call.granted, in_call.holder_busy) == (False, True)
    entry = await first.lookup("ada")
    assert entry is not None
    assert (entry.sid, entry.device, entry.status) == ("sid-3", "laptop", "busy")
    await first.claim("Bob", "sid-4", None)
    assert await second.online() == [("ada", "busy"), ("Bob", "available")]
    assert await second.release("ada", "sid-3") is True
    assert await first.lookup("ada") is None


async def test_names_of_a_dead_process_are_freed_and_swept_once(
    redis: Redis, namespace: str
) -> None:
    alive = RedisDirectory(redis, namespace, LEASE)
    dead = RedisDirectory(redis, namespace, LEASE)
    await alive.claim("ada", "a", None)
    await dead.claim("bob", "b", None)
    for _ in range(5):
        await alive.renew()
        await asyncio.sleep(LEASE / 3)
    assert [name for name, _ in await alive.online()] == ["ada"]
    assert await alive.lookup("bob") is None
    assert (await alive.claim("bob", "c", "other-browser")).granted is True  # free again
    assert await alive.sweep() == []  # bob's new holder is live
    await dead.claim("cy", "d", None)
    for _ in range(4):
        await alive.renew()
        await asyncio.sleep(LEASE / 3)
    assert await alive.sweep() == ["cy"]
    assert await alive.sweep() == []
