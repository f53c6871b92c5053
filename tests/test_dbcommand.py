"""``quartchat db upgrade`` / ``quartchat db current`` as real subprocesses, and the
server that starts (or refuses to) after them; on SQLite and PostgreSQL (`store_url`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import make_url
from websockets.asyncio.client import connect

from quartchat.store import MessageStore, migrate
from quartchat.store.schema import metadata

from .conftest import receive_json
from .databases import PRE_MIGRATION_ROWS, execute, on_connection
from .servers import LiveServer, free_port

HEAD = ScriptDirectory(migrate.SCRIPT_LOCATION).get_current_head()


def quartchat(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m quartchat ARGS`` with no QUARTCHAT_* settings but ``env``."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("QUARTCHAT_")}
    return subprocess.run(
        [sys.executable, "-m", "quartchat", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def test_db_upgrade_then_the_server_starts(store_url: str, tmp_path: Path) -> None:
    env = {"QUARTCHAT_STORE_URL": store_url}
    current = quartchat("db", "current", cwd=tmp_path, env=env)
    assert (current.returncode, current.stdout) == (
        0,
        f"none (head is {HEAD}: run `quartchat db upgrade`)\n",
    )
    upgraded = quartchat("db", "upgrade", cwd=tmp_path, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == f"{shown(store_url)}: upgraded from revision none to {HEAD}\n"
    again = quartchat("db", "upgrade", cwd=tmp_path, env=env)
    assert again.stdout == f"{shown(store_url)}: already at revision {HEAD}\n"
    assert quartchat("db", "current", cwd=tmp_path, env=env).stdout == f"{HEAD} (head)\n"

    server = LiveServer(tmp_path, env=env)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            assert (await client.get("/healthz")).json()["status"] == "ok"
            async with connect(f"{server.ws_url}/ws/room/a/ada/") as ada:
                await ada.send(json.dumps({"message": "stored by the server"}))
                assert (await receive_json(ada))["message"] == "stored by the server"
            history = (await client.get("/api/rooms/a/messages")).json()["messages"]
        assert [(m["id"], m["message"]) for m in history] == [(1, "stored by the server")]
    finally:
        server.stop()


async def test_the_server_refuses_a_pre_migration_database_until_upgraded(
    store_url: str, tmp_path: Path
) -> None:
    await on_connection(store_url, metadata.create_all)
    await execute(store_url, *PRE_MIGRATION_ROWS)
    env = {"QUARTCHAT_STORE_URL": store_url}
    server = LiveServer(tmp_path, env=env)
    with pytest.raises(RuntimeError, match="exited early with 1"):
        server.start()
    log = server.log.read_text()
    assert "but no schema revision" in log and "run `quartchat db upgrade`" in log
    assert "Traceback" not in log  # one plain line, not Hypercorn's lifespan failure

    upgraded = quartchat("db", "upgrade", cwd=tmp_path, env=env)
    assert upgraded.stdout == f"{shown(store_url)}: upgraded from revision none to {HEAD}\n"
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            history = (await client.get("/api/rooms/a/messages")).json()["messages"]
        assert [m["message"] for m in history] == ["from before"]
    finally:
        server.stop()


def test_db_commands_read_settings_like_the_server(tmp_path: Path) -> None:
    from_file = f"sqlite+aiosqlite:///{tmp_path / 'from-file.db'}"
    from_env = f"sqlite+aiosqlite:///{tmp_path / 'from-env.db'}"
    config = tmp_path / "custom.toml"
    config.write_text(f'[store]\nurl = "{from_file}"\n')

    flag_after = quartchat("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert flag_after.stdout.startswith(f"{from_file}: upgraded")
    flag_before = quartchat("--config", str(config), "db", "current", cwd=tmp_path)
    assert flag_before.stdout == f"{HEAD} (head)\n"
    by_variable = quartchat("db", "current", cwd=tmp_path, env={"QUARTCHAT_CONFIG": str(config)})
    assert by_variable.stdout == f"{HEAD} (head)\n"
    overridden = quartchat(
        "db",
        "upgrade",
        "--config",
        str(config),
        cwd=tmp_path,
        env={"QUARTCHAT_STORE_URL": from_env},
    )
    assert overridden.stdout.startswith(f"{from_env}: upgraded")
    (tmp_path / "config.toml").write_text(f'[store]\nurl = "{from_file}"\n')
    assert quartchat("db", "upgrade", cwd=tmp_path).stdout.startswith(f"{from_file}: already")

    bad = quartchat("db", "upgrade", cwd=tmp_path, env={"QUARTCHAT_STORE_URLS": "x"})
    assert bad.returncode == 2 and "QUARTCHAT_STORE_URLS" in bad.stderr
    assert quartchat("db", cwd=tmp_path).returncode == 2  # an action is required


def test_an_unreachable_store_fails_with_one_line(tmp_path: Path) -> None:
    nothing_listens = f"postgresql+asyncpg://postgres:secret@127.0.0.1:{free_port()}/quartchat"
    for args in (["db", "upgrade"], ["db", "current"], ["--bind", f"127.0.0.1:{free_port()}"]):
        result = quartchat(*args, cwd=tmp_path, env={"QUARTCHAT_STORE_URL": nothing_listens})
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.startswith("quartchat: postgresql+asyncpg://postgres:***@127.0.0.1:")
        assert "the store is unavailable" in result.stderr and "secret" not in result.stderr
        assert len(result.stderr.splitlines()) == 1


async def test_an_unknown_revision_fails_with_one_line(store_url: str, tmp_path: Path) -> None:
    store = MessageStore(store_url)
    await store.open()
    await store.close()
    await execute(store_url, "UPDATE alembic_version SET version_num = 'f00d_future'")
    for args in (["db", "upgrade"], ["db", "current"], ["--bind", f"127.0.0.1:{free_port()}"]):
        result = quartchat(*args, cwd=tmp_path, env={"QUARTCHAT_STORE_URL": store_url})
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
        assert "revision f00d_future, which this version of quartchat does not" in result.stderr
