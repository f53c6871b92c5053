"""Serving: the `quartchat` command, Hypercorn directly, HTTP/2 cleartext (h2c), the wheel
carrying templates and static files.  TLS and h2 over it: test_devcert; several workers:
test_workers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from quartchat.config import ConfigError, load_settings
from quartchat.serving import check_serving

from .servers import ROOT, LiveServer, free_port, run_cli, wait_for_port


def test_bad_config_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[limits]\nqueue_length = -3\n")
    result = run_cli("--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "limits.queue_length" in result.stderr
    result = run_cli(env={"QUARTCHAT_STORE_URL": "postgres-without-driver"}, cwd=tmp_path)
    assert result.returncode == 2 and "store.url" in result.stderr


def test_bad_bind_flag_is_refused(tmp_path: Path) -> None:
    result = run_cli("--bind", "localhost", cwd=tmp_path)
    assert result.returncode == 2 and "server.bind" in result.stderr


def test_many_workers_need_a_shared_broker(tmp_path: Path) -> None:
    result = run_cli(env={"QUARTCHAT_SERVER_WORKERS": "2"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "server.workers" in result.stderr and "Redis" in result.stderr


def test_many_workers_are_fine_with_redis() -> None:
    shared = {"server": {"workers": 2}, "broker": {"url": "redis://127.0.0.1:6379/0"}}
    check_serving(load_settings(environ={}, overrides=shared))  # raises nothing
    alone = {"server": {"workers": 2}, "broker": {"url": "memory://"}}
    with pytest.raises(ConfigError, match=r"server\.workers"):
        check_serving(load_settings(environ={}, overrides=alone))


def test_console_script_is_installed() -> None:
    result = subprocess.run(["quartchat", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "--bind" in result.stdout and "--config" in result.stdout


def test_config_file_given_by_flag_is_used(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "custom.toml"
    config.write_text(
        f'[server]\nbind = "127.0.0.1:{port}"\n'
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "from-config.db"}"\n'
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUARTCHAT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "quartchat", "--config", str(config)], cwd=tmp_path, env=clean
    )
    try:
        wait_for_port(port, process)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"] == "ok"
        assert (tmp_path / "from-config.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_hypercorn_can_serve_the_factory_directly(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUARTCHAT_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercorn",
            "quartchat:create_app()",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        env={**clean, "QUARTCHAT_STORE_URL": f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"},
    )
    try:
        wait_for_port(port, process)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_uvloop_event_loop_serves_chat(tmp_path: Path) -> None:
    uvloop_server = LiveServer(tmp_path, env={"QUARTCHAT_SERVER_EVENT_LOOP": "uvloop"})
    uvloop_server.start()
    try:
        url = f"{uvloop_server.ws_url}/ws/room/lobby/ada/"
        async with connect(url, open_timeout=5) as ada:
            await ada.send(json.dumps({"message": "on uvloop"}))
            async with asyncio.timeout(5):
                echo = json.loads(await ada.recv())
        assert (echo["type"], echo["message"]) == ("chat_message", "on uvloop")
        assert uvloop_server.process is not None
        maps = Path(f"/proc/{uvloop_server.process.pid}/maps")
        assert "uvloop" in await asyncio.to_thread(maps.read_text)  # its extension is loaded
    finally:
        uvloop_server.stop()


def test_unknown_event_loops_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"server\.event_loop"):
        load_settings(environ={}, overrides={"server": {"event_loop": "trio"}})


async def test_http2_cleartext_prior_knowledge(server: LiveServer) -> None:
    async with httpx.AsyncClient(http1=False, http2=True, timeout=5) as client:
        response = await client.get(f"{server.http_url}/api/rooms")
    assert response.http_version == "HTTP/2"
    assert response.json() == {"rooms": []}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [built] = out.glob("quartchat-*.whl")
    return built


def test_wheel_ships_templates_and_static(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "quartchat/__init__.py",
        "quartchat/templates/room.html",
        "quartchat/templates/index.html",
        "quartchat/static/js/room.js",
        "quartchat/static/css/app.css",
        "quartchat/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "quartchat/store/migrations/env.py",
        "quartchat/store/migrations/versions/0001_initial.py",
    ):
        assert expected in names


INSTALLED_CHECK = """
import asyncio, pathlib, quartchat
from quartchat.store import migrate
app = quartchat.create_app({"store": {"url": "sqlite+aiosqlite:///installed.db"}})
assert "site-packages" in app.template_folder, app.template_folder
assert "site-packages" in migrate.SCRIPT_LOCATION, migrate.SCRIPT_LOCATION

async def main():
    async with app.test_app():
        client = app.test_client()
        index = await client.get("/")
        script = await client.get("/static/js/room.js")
        print(index.status_code, script.status_code)

asyncio.run(main())
"""


def test_a_regular_install_finds_its_templates_and_static(wheel: Path, tmp_path: Path) -> None:
    """`pip install .` (not editable): pages, assets and migrations come from site-packages
    (the app migrates its empty database as it starts)."""
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        timeout=120,
    )
    result = subprocess.run(
        [str(python), "-c", INSTALLED_CHECK],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "200"]
    current = subprocess.run(
        [str(python), "-m", "quartchat", "db", "current"],
        cwd=tmp_path,
        env={**os.environ, "QUARTCHAT_STORE_URL": "sqlite+aiosqlite:///installed.db"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert current.stdout.endswith(" (head)\n"), current.stderr
