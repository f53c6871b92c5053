"""Databases for the tests.  PostgreSQL is a real server, ``$DATABASE_URL`` or the local
one, in which each test session makes a database of its own and drops it at the end."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import URL, Connection, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

LOCAL_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_SECONDS = 5

# History in the tables quartchat made before it had migrations (metadata.create_all).
PRE_MIGRATION_ROWS = [
    "INSERT INTO rooms (name, last_id) VALUES ('a', 1)",
    "INSERT INTO messages (room, id, author, text, created_at, client_id) "
    "VALUES ('a', 1, 'ada', 'from before', CURRENT_TIMESTAMP, 'k-1')",
]

T = TypeVar("T")


def postgres_server() -> URL | None:
    """``$DATABASE_URL`` (any PostgreSQL URL, run through asyncpg), else the local server
    when something listens on its port, else None."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return make_url(configured).set(drivername="postgresql+asyncpg")
    local = make_url(LOCAL_SERVER)
    try:
        socket.create_connection((local.host, local.port), timeout=1).close()
    except OSError:
        return None
    return local


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


async def create_database(server: URL) -> URL:
    """A new, uniquely named database on ``server``."""
    name = f"quartchat_test_{os.getpid()}_{secrets.token_hex(4)}"
    await _autocommit(server, f'CREATE DATABASE "{name}"')
    return server.set(database=name)


async def drop_database(server: URL, database: URL) -> None:
    await _autocommit(server, f'DROP DATABASE IF EXISTS "{database.database}" WITH (FORCE)')


async def empty_database(url: str) -> None:
    """Drop every table, type and sequence a test left, with the schema that holds them."""
    await _autocommit(make_url(url), "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")


async def on_connection(url: str, work: Callable[[Connection], T]) -> T:
    """``work(connection)`` on a synchronous connection to ``url`` (any dialect), in a
    transaction."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


async def execute(url: str, *statements: str) -> None:
    """Run ``statements`` in one transaction on the database at ``url`` (any dialect)."""

    def run(connection: Connection) -> None:
        for statement in statements:
            connection.execute(text(statement))

    await on_connection(url, run)


async def _autocommit(database: URL, *statements: str) -> None:
    engine = create_async_engine(
        url_text(database), poolclass=NullPool, isolation_level="AUTOCOMMIT", **_timeout()
    )
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _timeout() -> dict[str, dict[str, float]]:
    return {"connect_args": {"timeout": CONNECT_TIMEOUT_SECONDS, "command_timeout": 30}}


async def break_store(url: str) -> None:
    """Drop the messages table of the database at ``url``, under a running app: every store
    call of that app fails from now on."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE messages"))
    finally:
        await engine.dispose()
