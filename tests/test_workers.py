"""Several worker processes (``server.workers = 2`` with Redis): every worker closes its
sockets with 1001 when the server stops, however it is stopped, and /metrics adds up what
every worker counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .conftest import eventually, receive_until
from .prometheus import scrape
from .servers import LiveServer

WORKERS = 2
MOST_SOCKETS = 40  # opened until every worker holds some; far more than ever needed
ROOMS = "quartchat_rooms_with_members"  # one series per worker (label pid)


@pytest.fixture
def workers_server(tmp_path: Path, redis_url: str) -> Iterator[LiveServer]:
    (tmp_path / "tmp").mkdir()
    live = LiveServer(
        tmp_path,
        env={
            "QUARTCHAT_SERVER_WORKERS": str(WORKERS),
            "QUARTCHAT_BROKER_URL": redis_url,
            "TMPDIR": str(tmp_path / "tmp"),  # where the metrics directory goes
        },
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


@dataclass
class Spread:
    """Room sockets (one room each, as the Redis server is shared with other tests) spread
    over every worker, and how many rooms each worker (by pid) holds."""

    sockets: list[ClientConnection] = field(default_factory=list)
    rooms_by_pid: dict[str, float] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def spread_over_workers(server: LiveServer) -> AsyncIterator[Spread]:
    spread = Spread()
    prefix = f"w-{uuid.uuid4().hex[:10]}"
    async with contextlib.AsyncExitStack() as stack:
        while len([n for n in spread.rooms_by_pid.values() if n]) < WORKERS:
            assert len(spread.sockets) < MOST_SOCKETS, spread.rooms_by_pid
            n = len(spread.sockets)
            url = f"{server.ws_url}/ws/room/{prefix}-{n}/u{n}/"
            connection = await stack.enter_async_context(connect(url, open_timeout=20))
            spread.sockets.append(connection)
            spread.rooms_by_pid = (await scrape(server.http_url)).by_label(ROOMS, "pid")
        yield spread


async def close_codes(sockets: list[ClientConnection], timeout: float) -> list[int | None]:
    """Read every socket until it closes; its close code (None: closed without one)."""

    async def closed(connection: ClientConnection) -> int | None:
        with pytest.raises(ConnectionClosed) as ended:
            while True:
                await connection.recv()
        return ended.value.rcvd.code if ended.value.rcvd else None

    async with asyncio.timeout(timeout):
        return list(await asyncio.gather(*(closed(connection) for connection in sockets)))


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_sigterm_closes_every_workers_sockets_with_1001_and_exits_0(
    workers_server: LiveServer, tmp_path: Path
) -> None:
    async with spread_over_workers(workers_server) as spread:
        for connection in spread.sockets:  # each alone in its room: it gets its echo
            await connection.send(json.dumps({"message": "hello"}))
            await receive_until(connection, "chat_message")
        count = len(spread.sockets)
        # A worker creates a metric file, then sizes it: a scrape in between sees it empty.
        (metrics_dir,) = (tmp_path / "tmp").glob("quartchat-metrics-*")
        (metrics_dir / "counter_4242424.db").write_bytes(b"")
        for _ in range(4):  # whichever worker answers, it reports every worker's counts
            samples = await scrape(workers_server.http_url)
            assert samples.get("quartchat_chat_messages_accepted_total") == count
            assert samples.get("quartchat_chat_messages_delivered_total") == count
            assert samples.get("quartchat_open_sockets", kind="room") == count
            assert samples.get("quartchat_broker_connected") == 1
        assert workers_server.process is not None
        process = workers_server.process
        started = time.monotonic()
        process.terminate()  # SIGTERM to the parent only
        codes = await close_codes(spread.sockets, timeout=5)
    assert codes == [1001] * count
    assert process.wait(timeout=15) == 0
    assert time.monotonic() - started < 10
    log = workers_server.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log
    assert not list((tmp_path / "tmp").iterdir())  # the metrics directory is gone
    assert not any(alive(int(pid)) for pid in spread.rooms_by_pid)


async def test_a_worker_that_dies_stops_the_others_cleanly(workers_server: LiveServer) -> None:
    async with spread_over_workers(workers_server) as spread:
        victim, survivor = list(spread.rooms_by_pid)
        os.kill(int(victim), signal.SIGKILL)
        codes = await close_codes(spread.sockets, timeout=10)
    assert codes.count(1001) == spread.rooms_by_pid[survivor]  # the survivor's, said goodbye
    assert codes.count(None) == spread.rooms_by_pid[victim]  # the dead worker's, cut off
    assert workers_server.process is not None
    assert workers_server.process.wait(timeout=15) == 1
    assert not alive(int(survivor))


async def test_workers_stop_cleanly_when_the_parent_is_killed(workers_server: LiveServer) -> None:
    async with spread_over_workers(workers_server) as spread:
        pids = [int(pid) for pid in spread.rooms_by_pid]
        try:
            workers_server.kill()  # SIGKILL: the workers see their pipe from it close
            codes = await close_codes(spread.sockets, timeout=10)
            assert codes == [1001] * len(spread.sockets)

            async def workers_gone() -> bool:
                return not any(alive(pid) for pid in pids)

            await eventually(workers_gone, timeout=15)
        finally:
            for pid in pids:  # whatever happened above, leave nothing running
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
