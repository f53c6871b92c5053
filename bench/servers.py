"""The servers under test, each a real process pinned to its own core, and what they cost:
CPU time and RSS summed over the process and its children (workers), read from /proc."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
START_TIMEOUT_SECONDS = 30.0

# Limits meant for people, not for a load generator on one address: off for the bench.
# (Each socket's outbound queue keeps its default: a client of the bench never lags by more
# than its room's messages in flight.)
UNLIMITED = {
    "QUARTCHAT_LIMITS_RATE_PER_SECOND": "1000000",
    "QUARTCHAT_LIMITS_RATE_BURST": "1000000",
    "QUARTCHAT_CALL_RATE_PER_SECOND": "1000000",
    "QUARTCHAT_CALL_RATE_BURST": "1000000",
    "QUARTCHAT_LIMITS_CONNECTIONS_PER_IP": "1000000",
    "QUARTCHAT_LIMITS_HANDSHAKES_PER_IP_PER_SECOND": "1000000",
    "QUARTCHAT_LIMITS_HANDSHAKE_BURST": "1000000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The other servers measured, by kind: an ASGI app each.
APPS = {
    "ceiling": "bench.ceiling:app",  # the raw-ASGI ceiling of the stack
    "starlette": "bench.starlette_chat:app",  # the reference: Starlette + broadcaster
    "quart": "bench.quart_room:app",  # a room socket through Quart that does nothing
}


@dataclass
class Target:
    """A server to measure: ``kind`` is "quartchat" or one of :data:`APPS`, served by
    Hypercorn or Uvicorn."""

    name: str
    kind: str
    settings: dict[str, str] = field(default_factory=dict)  # QUARTCHAT_* for quartchat
    server: str = "hypercorn"  # for the apps of APPS: hypercorn or uvicorn
    redis: bool = False  # start a private redis-server and use it as the broker
    dialect: str = ""  # the room socket's subprotocol the clients ask for; "": the seed's

    @property
    def workers(self) -> int:
        return int(self.settings.get("QUARTCHAT_SERVER_WORKERS", "1"))


class Running:
    """A started target; ``pids()`` are the processes whose CPU and memory count."""

    def __init__(self, target: Target, workdir: Path, core: int) -> None:
        self.target = target
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "server.log"
        self.redis: subprocess.Popen[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUARTCHAT_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        pin = ["taskset", "-c", str(core)]
        try:
            self._launch = self._prepare(target, workdir, env, pin)
            self.log.write_bytes(b"")
            self.process = self._start()
        except BaseException:
            self.stop()  # the redis-server, if it started
            raise

    def _prepare(
        self, target: Target, workdir: Path, env: dict[str, str], pin: list[str]
    ) -> tuple[list[str], dict[str, str], Path]:
        """Start the target's redis-server, if any; the server's command, env and cwd."""
        if target.redis:
            redis_port = free_port()
            self.redis = subprocess.Popen(
                [
                    *pin,
                    _redis_server(),
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
            )
            wait_for_port(redis_port, self.redis)
            env["QUARTCHAT_BROKER_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        if target.kind == "quartchat":
            env |= UNLIMITED | target.settings
            env["QUARTCHAT_STORE_URL"] = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
            command = [sys.executable, "-m", "quartchat", "--bind", f"127.0.0.1:{self.port}"]
        elif target.server == "uvicorn":
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                APPS[target.kind],
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--ws",
                "websockets",
                "--no-access-log",
                "--loop",
                "asyncio",
            ]
        else:
            command = [sys.executable, "-m", "bench.serve", APPS[target.kind], str(self.port)]
        return [*pin, *command], env, workdir if target.kind == "quartchat" else ROOT

    def _start(self) -> subprocess.Popen[bytes]:
        command, env, cwd = self._launch
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log
            )
        try:
            wait_for_port(self.port, process)
        except BaseException:
            process.kill()
            process.wait()
            raise
        return process

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server with ``sig`` and start it again on the same port and database;
        return once it listens."""
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=30)
        self.process = None
        self.process = self._start()

    def pids(self) -> list[int]:
        found = _tree(self.process.pid) if self.process is not None else []
        if self.redis is not None:
            found.append(self.redis.pid)
        return found

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def rss_kb(self) -> int:
        return sum(rss_kb(pid) for pid in self.pids())

    def stop(self) -> None:
        """SIGTERM, then SIGKILL for anything of the tree still there after 15 s."""
        tree = self.pids()
        for process in (self.process, self.redis):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    return found


def wait_for_port(port: int, process: subprocess.Popen[Any]) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; fail if ``process`` exits first."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited early with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {START_TIMEOUT_SECONDS}s")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(_tree(int(child)))
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_kb(pid: int) -> int:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except OSError:
        return 0
    return pages * PAGE_KB
