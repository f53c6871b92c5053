"""Schema migrations (Alembic), each test on SQLite and on PostgreSQL (`store_url`): what
``open()`` migrates by itself, what it refuses, and what ``upgrade()`` does about it."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from quartchat.store import MessageStore, NewMessage, Revisions, SchemaMismatch, migrate
from quartchat.store.schema import metadata

from .databases import PRE_MIGRATION_ROWS, execute, on_connection

HEAD = ScriptDirectory(migrate.SCRIPT_LOCATION).get_current_head()
UPGRADE_HINT = "run `quartchat db upgrade`"

# What the next version of quartchat will have: one more revision after this one's head.
NEXT_REVISION = f"""
import sqlalchemy as sa
from alembic import op

revision = "next_version"
down_revision = {HEAD!r}


def upgrade() -> None:
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("notes")
"""


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[MessageStore]:
    """A store on an empty database, not opened yet."""
    instance = MessageStore(store_url)
    try:
        yield instance
    finally:
        await instance.close()


def journal_mode(connection: Connection) -> str:
    return str(connection.exec_driver_sql("PRAGMA journal_mode").scalar())


def tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_an_empty_database_is_migrated_on_open(store_url: str, store: MessageStore) -> None:
    await store.open()
    assert await store.revisions() == Revisions(HEAD, HEAD)
    [appended] = await store.append_many([NewMessage("a", "ada", "first")])
    assert appended.message.id == 1


async def test_head_is_exactly_the_schema_of_schema_py(store_url: str, store: MessageStore) -> None:
    await store.open()

    def differences(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    assert await on_connection(store_url, differences) == []


async def test_processes_starting_at_once_migrate_once(store_url: str) -> None:
    stores = [MessageStore(store_url) for _ in range(4)]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(one.open() for one in stores))
        assert await stores[0].revisions() == Revisions(HEAD, HEAD)
        if store_url.startswith("sqlite"):
            mode = await on_connection(store_url, journal_mode)
            assert mode == "wal"
    finally:
        for one in stores:
            await one.close()


async def test_a_pre_migration_database_is_refused_until_upgraded(
    store_url: str, store: MessageStore
) -> None:
    await on_connection(store_url, metadata.create_all)
    await execute(store_url, *PRE_MIGRATION_ROWS)
    with pytest.raises(SchemaMismatch, match=r"tables \(messages, rooms\) but no schema revision"):
        await store.open()
    with pytest.raises(SchemaMismatch, match=UPGRADE_HINT):
        await store.open()
    assert await store.upgrade() == Revisions(None, HEAD)
    await store.open()
    [kept] = await store.page("a", limit=5)
    assert (kept.id, kept.text) == (1, "from before")
    [resent, new] = await store.append_many(
        [NewMessage("a", "ada", "from before", "k-1"), NewMessage("a", "ada", "after")]
    )
    assert (resent.new, resent.message.id, new.message.id) == (False, 1, 2)


async def test_another_apps_tables_are_refused_then_upgrade_adds_ours(
    store_url: str, store: MessageStore
) -> None:
    await execute(store_url, "CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    with pytest.raises(SchemaMismatch, match=r"tables \(notes\) but no schema revision"):
        await store.open()
    assert await store.upgrade() == Revisions(None, HEAD)
    await store.open()
    assert await on_connection(store_url, tables) >= {"notes", "rooms", "messages"}


async def test_tables_by_our_names_that_are_not_ours_are_left_alone(
    store_url: str, store: MessageStore
) -> None:
    await execute(store_url, "CREATE TABLE rooms (id INTEGER PRIMARY KEY)")
    with pytest.raises(SchemaMismatch, match="not made by quartchat"):
        await store.upgrade()
    assert await on_connection(store_url, tables) == {"rooms"}
    with pytest.raises(SchemaMismatch, match=UPGRADE_HINT):
        await store.open()


def use_next_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Switch to this version's migrations plus NEXT_REVISION; return the new head."""
    location = tmp_path / "next-migrations"
    shutil.copytree(migrate.SCRIPT_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "next_version.py").write_text(NEXT_REVISION)
    monkeypatch.setattr(migrate, "SCRIPT_LOCATION", str(location))
    return "next_version"


async def test_a_database_behind_head_is_refused_until_upgraded(
    store_url: str, store: MessageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.open()
    await store.append_many([NewMessage("a", "ada", "kept")])
    head = use_next_version(tmp_path, monkeypatch)
    with pytest.raises(SchemaMismatch, match=f"at revision {HEAD}, .* needs {head}: "):
        await store.open()
    with pytest.raises(SchemaMismatch, match=UPGRADE_HINT):
        await store.open()
    assert await store.revisions() == Revisions(HEAD, head)
    assert await store.upgrade() == Revisions(HEAD, head)
    await store.open()
    assert "notes" in await on_connection(store_url, tables)
    assert [m.text for m in await store.page("a", limit=5)] == ["kept"]


async def test_an_unknown_newer_revision_is_refused(store_url: str, store: MessageStore) -> None:
    await store.open()
    await execute(store_url, "UPDATE alembic_version SET version_num = 'f00d_future'")
    for call in (store.open, store.upgrade, store.revisions):
        with pytest.raises(SchemaMismatch, match="revision f00d_future, which this version"):
            await call()
    assert await on_connection(store_url, tables) == {"alembic_version", "rooms", "messages"}


async def test_a_database_downgraded_to_base_is_migrated_again(
    store_url: str, store: MessageStore
) -> None:
    await store.open()

    def downgrade(connection: Connection) -> None:
        command.downgrade(migrate.alembic_config(connection), "base")

    await on_connection(store_url, downgrade)
    assert await on_connection(store_url, tables) == {"alembic_version"}
    await store.open()
    assert await store.revisions() == Revisions(HEAD, HEAD)
