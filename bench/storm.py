"""A reconnect storm: many clients lose their server at once and all come back together.

``clients`` members (:class:`bench.resume.Member`) spread over ``room_count`` rooms, each
room with a few messages; the server is restarted; every member reconnects at once with
``?since=`` and jittered backoff while it is refused; one member per room posts as soon as
it is back (others get that in their replay or live); once every member has replayed, a
fresh message per room must reach every member.  Recovery time runs from the start of the
restart until then.  Afterwards each member's shown ids are compared with its room's
history from the HTTP API: equal, from 1, no gap, no duplicate.

    python -m bench.storm --clients 2000 --rooms 100 [--kill]

starts its own server (pinned to core 0, this client to core 1) and prints the result as
JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .resume import Member, room_history

CONNECT_CONCURRENCY = 64
MESSAGES_BEFORE = 2  # per room, before the restart
GOODBYE = "close 1001"  # the server going away at the restart: once per client, not a refusal
WAIT_SECONDS = 120.0  # for any one stage: the storm fails rather than hang
POLL_SECONDS = 0.02

# Limits meant for people behind one address, off for a crowd on 127.0.0.1.
STORM_SETTINGS = {
    "QUARTCHAT_LIMITS_RATE_PER_SECOND": "1000000",
    "QUARTCHAT_LIMITS_RATE_BURST": "1000000",
    "QUARTCHAT_LIMITS_CONNECTIONS_PER_IP": "100000",
    "QUARTCHAT_LIMITS_HANDSHAKES_PER_IP_PER_SECOND": "100000",
    "QUARTCHAT_LIMITS_HANDSHAKE_BURST": "100000",
}


def storm_settings() -> dict[str, str]:
    """:data:`STORM_SETTINGS`, a copy to add to."""
    return dict(STORM_SETTINGS)


@dataclass
class StormResult:
    clients: int
    rooms: int
    connect_seconds: float  # opening every client before the restart
    restart_seconds: float  # the restart itself: stopped, started, listening
    recovery_seconds: float  # restart begun -> every client replayed + a fresh message seen
    client_cpu_seconds: float  # this process's CPU time meanwhile (is the client the limit?)
    resumed: int  # clients whose shown ids equal their room's history
    refused_attempts: int  # connections refused or lost during the storm (not the goodbyes)
    events: dict[str, int] = field(default_factory=dict)  # their causes
    mismatched: list[str] = field(default_factory=list)  # clients that did not resume cleanly


async def reconnect_storm(
    ws_url: str,
    clients: int,
    room_count: int,
    restart: Callable[[], Awaitable[None]],
) -> StormResult:
    """Run the storm against the server at ``ws_url``; ``restart()`` stops it and returns
    once it listens again (same port, same database)."""
    stamp = f"{time.time_ns():x}"[-8:]
    rooms = [f"storm-{stamp}-{n}" for n in range(room_count)]
    members = [Member(ws_url, rooms[i % room_count], f"c{i}", window=1) for i in range(clients)]
    posters = members[:room_count]  # the first member of each room
    try:
        started = time.perf_counter()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def first_connect(member: Member) -> None:
            async with gate:
                member.start()
                await _until(lambda: member.sessions >= 1)

        await asyncio.gather(*(first_connect(member) for member in members))
        connect_seconds = time.perf_counter() - started
        for poster in posters:
            await poster.post(MESSAGES_BEFORE)
        await _until(lambda: all(m.last_id >= MESSAGES_BEFORE for m in members))
        before = Counter(event for m in members for event in m.events.elements())

        restarted, client_cpu = time.perf_counter(), sum(os.times()[:2])
        await restart()
        restart_seconds = time.perf_counter() - restarted
        for poster in posters:
            await poster.post()  # goes out once its author is back
        await _until(lambda: all(m.sessions >= 2 and m.settled for m in members))
        expected = MESSAGES_BEFORE + 1
        await _until(lambda: all(m.last_id >= expected for m in members))
        for poster in posters:
            await poster.post()  # the fresh message
        await _until(lambda: all(m.last_id >= expected + 1 for m in members))
        recovery_seconds = time.perf_counter() - restarted
        client_cpu = sum(os.times()[:2]) - client_cpu

        during = Counter(event for m in members for event in m.events.elements()) - before
        histories = await asyncio.gather(*(asyncio.to_thread(_ids, ws_url, r) for r in rooms))
        by_room = dict(zip(rooms, histories, strict=True))
        mismatched = [
            m.user for m in members if m.shown != by_room[m.room] or m.dropped or m.unacknowledged
        ]
    finally:
        await asyncio.gather(*(member.stop() for member in members))
    return StormResult(
        clients=clients,
        rooms=room_count,
        connect_seconds=round(connect_seconds, 2),
        restart_seconds=round(restart_seconds, 2),
        recovery_seconds=round(recovery_seconds, 2),
        client_cpu_seconds=round(client_cpu, 2),
        resumed=clients - len(mismatched),
        refused_attempts=sum(n for event, n in during.items() if event != GOODBYE),
        events=dict(during),
        mismatched=mismatched,
    )


def _ids(ws_url: str, room: str) -> list[int]:
    http_url = "http" + ws_url.removeprefix("ws")
    return [message["id"] for message in room_history(http_url, room)]


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while not check():  # noqa: ASYNC110 - the members' state has no event to wait on
            await asyncio.sleep(POLL_SECONDS)


async def _main(clients: int, rooms: int, kill: bool) -> StormResult:
    from .servers import Running, Target

    with tempfile.TemporaryDirectory(prefix="quartchat-storm-") as workdir:
        target = Target("quartchat", "quartchat", storm_settings())
        server = Running(target, Path(workdir), core=0)
        sig = signal.SIGKILL if kill else signal.SIGTERM
        try:
            return await reconnect_storm(
                f"ws://127.0.0.1:{server.port}",
                clients,
                rooms,
                lambda: asyncio.to_thread(server.restart, sig),
            )
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    arguments = parser.parse_args()
    os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    result = asyncio.run(_main(arguments.clients, arguments.rooms, arguments.kill))
    print(json.dumps({**asdict(result), "signal": "SIGKILL" if arguments.kill else "SIGTERM"}))


if __name__ == "__main__":
    main()
