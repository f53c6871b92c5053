"""A real quartchat server (the ``quartchat`` command, so real Hypercorn) on a free loopback
port, started and stopped by tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from bench.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]


def missing(reason: str) -> NoReturn:
    """A component a test needs is not installed: skip, except in CI (``$CI`` set), where
    tests/run.sh should have installed it and its absence is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def stop_process(process: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` and wait for the end; kill what is still there after 10 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def server_pair(workdir: Path, env: dict[str, str]) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two servers (in workdir/a and workdir/b) with the same settings, stopped on exit."""
    servers = []
    for name in ("a", "b"):
        (workdir / name).mkdir()
        servers.append(LiveServer(workdir / name, env=env))
    try:
        for server in servers:
            server.start()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``python -m quartchat ARGS`` to completion, without the caller's QUARTCHAT_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUARTCHAT_")}
    return subprocess.run(
        [sys.executable, "-m", "quartchat", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


class LiveServer:
    """``python -m quartchat`` in a subprocess; restartable on the same port and database."""

    def __init__(
        self, workdir: Path, env: dict[str, str] | None = None, stderr_apart: bool = False
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("QUARTCHAT_")},
            "QUARTCHAT_STORE_URL": f"sqlite+aiosqlite:///{workdir / 'chat.db'}",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "server.log"  # stdout, and stderr too unless stderr_apart
        self.error_log = workdir / "server.err" if stderr_apart else self.log

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        with contextlib.ExitStack() as files:
            log = files.enter_context(self.log.open("ab"))
            errors = (
                subprocess.STDOUT
                if self.error_log == self.log
                else files.enter_context(self.error_log.open("ab"))
            )
            self.process = subprocess.Popen(
                [sys.executable, "-m", "quartchat", "--bind", f"127.0.0.1:{self.port}"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=errors,
            )
        try:
            wait_for_port(self.port, self.process)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}\n{self.log.read_text()}") from None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.process, sig)
        self.process = None

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
