"""``server.log_format = "json"``: the formatter, and a live server's stdout and stderr."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from quartchat.logs import JsonFormatter

from .servers import LiveServer, free_port


def record(name: str, message: str, args: Any = None, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_object() -> None:
    line = JsonFormatter().format(record("quartchat.chat", "stored %d message(s)", (3,)))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "INFO" and entry["logger"] == "quartchat.chat"
    assert entry["message"] == "stored 3 message(s)"
    assert entry["time"].endswith("+00:00") and isinstance(entry["pid"], int)


def test_an_exception_stays_on_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("quartchat", "failed", exc_info=sys.exc_info())
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_access_fields_leave_headers_and_environment_out() -> None:
    atoms = {
        "m": "GET",
        "U": "/api/rooms",
        "q": "",
        "H": "2",
        "s": "200",
        "h": "127.0.0.1:5000",
        "L": "0.001500",
        "{authorization}i": "Bearer secret",
        "{quartchat_ice_turn_secret}e": "secret",
    }
    line = JsonFormatter().format(record("hypercorn.access", "%(m)s %(U)s", atoms))
    entry = json.loads(line)
    assert entry["method"] == "GET" and entry["path"] == "/api/rooms"
    assert entry["status"] == 200 and entry["client"] == "127.0.0.1:5000"
    assert entry["duration_seconds"] == 0.0015 and entry["protocol"] == "2"
    assert "secret" not in line


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # fails on any line that is not JSON


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[LiveServer]:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # the app logs a warning about it
    live = LiveServer(
        tmp_path,
        env={"QUARTCHAT_SERVER_LOG_FORMAT": "json", "QUARTCHAT_BROKER_URL": dead_redis},
        stderr_apart=True,
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


async def test_a_json_server_logs_one_object_per_line(json_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(f"{json_server.http_url}/healthz")).status_code == 200
        rooms = await client.get(f"{json_server.http_url}/api/rooms")  # needs the dead Redis
        assert rooms.status_code == 503
        assert rooms.json()["error"] == "broker_unavailable"
    with pytest.raises(InvalidStatus):  # refused while the broker is unavailable
        await connect(f"{json_server.ws_url}/ws/call/", open_timeout=5)
    process = json_server.process
    assert process is not None
    json_server.stop()
    assert process.returncode == 0

    access = json_lines(json_server.log)  # stdout
    for entry in access:
        assert entry["logger"] == "hypercorn.access"
    [health] = [entry for entry in access if entry["path"] == "/healthz"]
    assert (health["method"], health["status"], health["level"]) == ("GET", 200, "INFO")
    assert health["client"].startswith("127.0.0.1:")
    assert 0 <= health["duration_seconds"] < 5
    assert [entry["status"] for entry in access if entry["path"] == "/api/rooms"] == [503]
    assert any(entry["path"] == "/ws/call/" for entry in access)

    others = json_lines(json_server.error_log)  # stderr
    for entry in others:
        assert {"time", "level", "logger", "message"} <= entry.keys()
    loggers = {entry["logger"] for entry in others}
    assert "hypercorn.error" in loggers  # "Running on ..."
    assert any(
        entry["logger"].startswith("quartchat.") and entry["level"] == "WARNING" for entry in others
    ), loggers  # the app's own: the broker is unreachable
