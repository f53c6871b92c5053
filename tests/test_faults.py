"""Faults under load, on real servers: the server killed while posts are in flight, Redis
restarted mid-conversation, a reader that stops reading, a reconnect storm.  The clients are
:class:`bench.resume.Member`: they resume with ``?since=`` and re-send what was not
acknowledged with the same ``client_id``, as docs/protocol.md asks of a client.  What must
hold is that nothing acknowledged is lost and that every member shows each message once, in
order, exactly the room's history.  The figures go to docs/reliability.md."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.resume import Member, room_history
from bench.storm import reconnect_storm, storm_settings
from quartchat.sockets import PROTOCOL

from .conftest import receive_until
from .redis_server import RedisServer
from .servers import LiveServer

WAIT_SECONDS = 30.0  # for any one stage of a test: a fault test fails, never hangs
SENDERS, READERS = 3, 2
POSTS_EACH = 60  # per sender
FAULT_AFTER = 45  # messages acknowledged (in all) before the fault
LEVEL = re.compile(r"^\S+ \S+ \[\d+\] \[([A-Z]+)\] ")
# What a Redis outage may log above INFO: the broker losing it and retrying, and each
# message stored meanwhile whose publication failed (members get it when they resume).
EXPECTED_IN_OUTAGE = re.compile(
    r"\[WARNING\] quartchat\.broker\.broker: broker (connection lost|still unavailable): "
    r"|\[ERROR\] quartchat\.chat\.writer: publishing message \S+ failed: BrokerUnavailable\("
)


@pytest.fixture
def server_env() -> dict[str, str]:
    return storm_settings()  # rate and per-address limits off: these clients are a crowd


def expected_in_outage(line: str) -> bool:
    level = LEVEL.match(line)
    return (level is not None and level.group(1) == "INFO") or bool(EXPECTED_IN_OUTAGE.search(line))


async def until(check: Callable[[], bool], timeout: float = WAIT_SECONDS) -> None:
    """Return once ``check()`` holds (the members' state has no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@asynccontextmanager
async def started(members: Sequence[Member]) -> AsyncIterator[None]:
    for member in members:
        member.start()
    try:
        await until(lambda: all(member.sessions for member in members))
        yield
    except BaseException:
        print("\n".join(repr(member) for member in members))  # what each was doing
        raise
    finally:
        await asyncio.gather(*(member.stop() for member in members))


def conversation(ws_url: str, room: str) -> tuple[list[Member], list[Member]]:
    senders = [Member(ws_url, room, f"sender{n}", window=4) for n in range(SENDERS)]
    readers = [Member(ws_url, room, f"reader{n}") for n in range(READERS)]
    return senders, readers


def acknowledged(senders: Sequence[Member]) -> dict[str, int]:
    return {key: value for sender in senders for key, value in sender.acknowledged.items()}


async def finish(
    server: LiveServer, room: str, senders: list[Member], readers: list[Member]
) -> list[dict[str, Any]]:
    """Wait until every post is acknowledged and every member is back and has shown the
    whole history; return the history."""
    await until(lambda: all(sender.settled for sender in senders))
    history = await asyncio.to_thread(room_history, server.http_url, room)
    await until(
        lambda: all(m.sessions > 1 and m.last_id == history[-1]["id"] for m in [*senders, *readers])
    )
    return history


def check_nothing_lost(
    history: list[dict[str, Any]],
    before_fault: dict[str, int],
    senders: list[Member],
    readers: list[Member],
) -> None:
    ids = [message["id"] for message in history]
    assert ids == list(range(1, len(ids) + 1))
    stored = {message["client_id"]: message["id"] for message in history}
    assert before_fault.items() <= stored.items()  # acknowledged before the fault: kept as is
    sent = {f"{sender.user}.{n}" for sender in senders for n in range(1, POSTS_EACH + 1)}
    assert Counter(message["client_id"] for message in history) == Counter(sent)  # each once
    for member in [*senders, *readers]:
        assert member.shown == ids, member.user  # no gap, no duplicate, the history's order
        assert member.dropped == 0, member.user  # the server sent nothing twice


async def test_sigkill_with_posts_in_flight_loses_nothing_acknowledged(server: LiveServer) -> None:
    senders, readers = conversation(server.ws_url, "busy")
    async with started([*senders, *readers]):
        for sender in senders:
            await sender.post(POSTS_EACH)
        await until(lambda: len(acknowledged(senders)) >= FAULT_AFTER)
        before_kill = acknowledged(senders)
        in_flight = {key for sender in senders for key in sender.unacknowledged}
        server.kill()  # at once: the event loop runs nothing in between
        await asyncio.to_thread(server.start)  # same port, same database
        history = await finish(server, "busy", senders, readers)
    assert in_flight  # posts were in flight when the server died
    check_nothing_lost(history, before_kill, senders, readers)
    resent = {key for sender in senders for key in sender.resent}
    print(f"\n{len(in_flight)} in flight at the kill; re-sent {len(resent)}: {sorted(resent)}")
    for member in [*senders, *readers]:
        assert member.events["close 1006"] == 1  # cut off once, then resumed


async def test_a_redis_restart_mid_conversation_loses_nothing(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {**storm_settings(), "QUARTCHAT_BROKER_URL": redis_server.url}
    server = LiveServer(tmp_path, env=env)
    server.start()
    try:
        senders, readers = conversation(server.ws_url, "redis")
        members = [*senders, *readers]
        async with started(members):
            for sender in senders:
                await sender.post(POSTS_EACH // 2)
            await until(lambda: len(acknowledged(senders)) >= FAULT_AFTER)
            before_outage = acknowledged(senders)
            await asyncio.to_thread(redis_server.stop)
            for sender in senders:  # they go on posting through the outage
                await sender.post(POSTS_EACH - POSTS_EACH // 2)
            # Every member is told (its socket closes with 1013), and refused (503) when it
            # comes back while Redis is away; it keeps its posts meanwhile.
            await until(lambda: all(member.events["close 1013"] for member in members))
            await until(lambda: all(member.events["http 503"] for member in members))
            await asyncio.to_thread(redis_server.start)
            history = await finish(server, "redis", senders, readers)
        assert server.process is not None and server.process.poll() is None  # still up
    finally:
        server.stop()
    check_nothing_lost(history, before_outage, senders, readers)
    log = server.log.read_text()
    assert "Traceback" not in log
    assert [line for line in log.splitlines() if not expected_in_outage(line)] == []


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@asynccontextmanager
async def rss_peak(pid: int) -> AsyncIterator[list[int]]:
    """Sample ``pid``'s RSS (kB) every 50 ms meanwhile; yields [baseline, peak so far]."""
    figures = [rss_kb(pid)] * 2

    async def sample() -> None:
        while True:
            figures[1] = max(figures[1], rss_kb(pid))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    try:
        yield figures
    finally:
        sampler.cancel()
        figures[1] = max(figures[1], rss_kb(pid))


def room_socket(server: LiveServer, user: str, **options: Any) -> Any:
    url = f"{server.ws_url}/ws/room/stalls/{user}/"
    return connect(url, subprotocols=[PROTOCOL], open_timeout=5, **options)  # type: ignore[list-item]


BIG_MESSAGES = 1_200  # of 50,000 characters: 60 MB to each member that reads
# An inbox without a bound would end up holding all that the stalled reader misses, about
# 60 MB; the bounded one holds 256 messages (13 MB) before the socket is closed.
RSS_GROWTH_MAX_KB = 32 * 1024


@pytest.mark.parametrize(
    "server_env",
    [{**storm_settings(), "QUARTCHAT_LIMITS_MESSAGE_MAX_CHARS": "60000"}],  # queue_length: 256
)
async def test_a_stalled_reader_costs_bounded_memory_and_the_others_get_everything(
    server: LiveServer,
) -> None:
    assert server.process is not None
    stalled_socket = socket.socket()
    stalled_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled_socket.connect(("127.0.0.1", server.port))
    async with (
        room_socket(server, "talker") as talker,
        room_socket(server, "listener") as listener,
        room_socket(
            # no keepalive pings: past 20 s, one arriving after the server closed the socket
            # would make the server's kernel reset the connection, taking the close frame
            server,
            "stalled",
            sock=stalled_socket,
            max_queue=1,
            ping_interval=None,
        ) as stalled,
    ):
        for connection in (talker, listener, stalled):
            await receive_until(connection, "history")
        # `stalled` reads nothing from here on; the listener reads everything.
        big = base64.b64encode(os.urandom(37_500)).decode()  # 50,000 chars that do not compress

        async def listen() -> list[tuple[int, str]]:
            got: list[tuple[int, str]] = []
            while len(got) < BIG_MESSAGES:
                frame = await receive_until(listener, "chat_message", timeout=WAIT_SECONDS)
                got.append((frame["id"], frame["message"].split(" ", 1)[0]))
            return got

        async with rss_peak(server.process.pid) as rss:
            listening = asyncio.create_task(listen())
            for n in range(BIG_MESSAGES):
                await talker.send(json.dumps({"message": f"{n} {big}"}))
                echo = await receive_until(talker, "chat_message", timeout=WAIT_SECONDS)
                assert echo["message"].startswith(f"{n} ")  # one at a time: acknowledged
            async with asyncio.timeout(WAIT_SECONDS):
                received = await listening
        assert received == [(n + 1, str(n)) for n in range(BIG_MESSAGES)]  # all, in order
        baseline, peak = rss
        print(f"\nserver RSS {baseline // 1024} MB, peak {peak // 1024} MB while 60 MB flowed")
        assert peak - baseline < RSS_GROWTH_MAX_KB
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT_SECONDS):
                while True:
                    await stalled.recv()  # what was buffered, then the close frame
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008


STORM_CLIENTS, STORM_ROOMS = 300, 30


async def test_a_reconnect_storm_after_a_restart_resumes_every_client(server: LiveServer) -> None:
    async def restart() -> None:
        await asyncio.to_thread(server.stop)  # SIGTERM: sockets closed with 1001
        await asyncio.to_thread(server.start)

    result = await reconnect_storm(server.ws_url, STORM_CLIENTS, STORM_ROOMS, restart)
    print(f"\n{result}")
    assert result.mismatched == []
    assert result.resumed == STORM_CLIENTS
    assert "close 1001" in result.events  # told to go; each came back (a second session)
