"""Fan-out load generator: R rooms x N members, S senders per room, against a real server.

Starts `quartchat` (the real command, so real Hypercorn) pinned to one core, runs the load
generator pinned to the other, and reports deliveries/s, end-to-end latency (the send time
travels inside the message), delivered/expected after a drain, server CPU time per delivery
and server RSS.

    python bench/fanout.py                     # the default scenarios
    python bench/fanout.py --rooms 1 --members 100 --senders 1 --messages 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MARK = "t="


@dataclass
class Result:
    scenario: str
    deliveries: int
    expected: int
    seconds: float
    deliveries_per_second: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    server_cpu_us_per_delivery: float
    server_busy: float  # share of one core the server used
    loadgen_busy: float  # the same for this load generator: near 1.0, it was the limit
    server_rss_mb: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, workdir: Path, core: int) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUARTCHAT_")}
        env |= {
            "QUARTCHAT_STORE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "QUARTCHAT_LIMITS_RATE_PER_SECOND": "100000",
            "QUARTCHAT_LIMITS_RATE_BURST": "100000",
            "QUARTCHAT_LIMITS_QUEUE_LENGTH": "10000",
        }
        command = [sys.executable, "-m", "quartchat", "--bind", f"127.0.0.1:{self.port}"]
        self.process = subprocess.Popen(
            ["taskset", "-c", str(core), *command],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def member(url: str, expected: int, latencies: list[float], done: asyncio.Event) -> int:
    """Count chat messages until ``expected`` arrived or the drain ends."""
    count = 0
    async with connect(url, max_size=None, compression=None, open_timeout=30) as connection:
        done.set()
        while count < expected:
            try:
                async with asyncio.timeout(10):
                    text = await connection.recv()
            except TimeoutError:
                break  # drained: whatever did not arrive by now is lost
            start = text.find(MARK)
            if start < 0:
                continue
            end = text.find(" ", start)
            latencies.append(time.monotonic_ns() - int(text[start + len(MARK) : end]))
            count += 1
    return count


async def sender(connection: ClientConnection, messages: int, window: int) -> None:
    """Send ``messages`` as fast as the server acknowledges them, ``window`` in flight."""
    in_flight = 0
    sent = 0
    while sent < messages or in_flight:
        while sent < messages and in_flight < window:
            await connection.send(json.dumps({"message": f"{MARK}{time.monotonic_ns()} pad"}))
            sent += 1
            in_flight += 1
        await connection.recv()  # our own echo (the sender is a member too)
        in_flight -= 1


async def run_scenario(
    port: int, pid: int, name: str, rooms: int, members: int, senders: int, messages: int
) -> Result:
    latencies: list[float] = []
    per_member = senders * messages
    ready = [asyncio.Event() for _ in range(rooms * members)]
    readers = [
        asyncio.create_task(
            member(
                f"ws://127.0.0.1:{port}/ws/room/{name}-{room}/m{index}/",
                per_member,
                latencies,
                ready[room * members + index],
            )
        )
        for room in range(rooms)
        for index in range(members)
    ]
    for event in ready:
        await event.wait()
    connections = [
        await connect(f"ws://127.0.0.1:{port}/ws/room/{name}-{room}/s{index}/", compression=None)
        for room in range(rooms)
        for index in range(senders)
    ]
    await asyncio.sleep(0.5)
    cpu_before, started = cpu_seconds(pid), time.monotonic()
    own_before = sum(os.times()[:2])
    await asyncio.gather(*(sender(connection, messages, window=8) for connection in connections))
    counts = await asyncio.gather(*readers)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_before
    own = sum(os.times()[:2]) - own_before
    for connection in connections:
        await connection.close()
    delivered = sum(counts) + rooms * senders * per_member  # senders also get every message
    expected = rooms * (members + senders) * per_member
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6 if ordered else 0.0

    return Result(
        scenario=f"{rooms} room(s) x {members + senders} members, {senders} sender(s)/room",
        deliveries=delivered,
        expected=expected,
        seconds=round(elapsed, 2),
        deliveries_per_second=round(delivered / elapsed),
        latency_ms_p50=round(quantile(0.50), 2),
        latency_ms_p95=round(quantile(0.95), 2),
        latency_ms_p99=round(quantile(0.99), 2),
        server_cpu_us_per_delivery=round(cpu / delivered * 1e6, 2),
        server_busy=round(cpu / elapsed, 2),
        loadgen_busy=round(own / elapsed, 2),
        server_rss_mb=round(rss_mb(pid), 1),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int)
    parser.add_argument("--members", type=int)
    parser.add_argument("--senders", type=int)
    parser.add_argument("--messages", type=int)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.rooms:
        scenarios = [("custom", args.rooms, args.members, args.senders, args.messages)]
    else:
        scenarios = [("one", 1, 99, 1, 1000), ("many", 50, 15, 5, 40)]
    os.sched_setaffinity(0, {1})
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        server = Server(Path(workdir), core=0)
        try:
            for name, rooms, members, senders, messages in scenarios:
                results.append(
                    await run_scenario(
                        server.port, server.process.pid, name, rooms, members, senders, messages
                    )
                )
        finally:
            server.stop()
    print(
        "| scenario | delivered/expected | deliveries/s | p50 ms | p95 ms | p99 ms "
        "| server CPU µs/delivery | server busy | load generator busy | server RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.scenario} | {r.deliveries / r.expected:.4f} | {r.deliveries_per_second:,} "
            f"| {r.latency_ms_p50} | {r.latency_ms_p95} | {r.latency_ms_p99} "
            f"| {r.server_cpu_us_per_delivery} | {r.server_busy:.0%} | {r.loadgen_busy:.0%} "
            f"| {r.server_rss_mb} |"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    asyncio.run(main())
