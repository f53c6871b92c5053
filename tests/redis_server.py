"""A private redis-server (or valkey-server) on a free loopback port, started and stopped by
tests; restartable on the same port to simulate an outage."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .servers import free_port, missing, stop_process, wait_for_port

SERVER_NAMES = ("redis-server", "valkey-server")


def server_binary() -> str:
    """Path of redis-server (or valkey-server); skip the test when there is none, but fail
    under CI (``$CI`` set), where tests/run.sh should have installed it."""
    for name in SERVER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    missing("redis-server is not installed (tests/run.sh installs it with apt-get)")


class RedisServer:
    """One redis-server process with no persistence, in its own directory."""

    def __init__(self, workdir: Path) -> None:
        self.binary = server_binary()
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                ],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.port, self.process)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}\n{self.log.read_text()}") from None

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
