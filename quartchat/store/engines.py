"""Where the store's SQL runs.  Every query is one plain function of a SQLAlchemy Core
``Connection``, run inside a transaction in one of two ways, chosen by the URL:

- PostgreSQL: the async engine (asyncpg) runs it with ``run_sync``, on the event loop.
- SQLite: a sync engine (Python's sqlite3) runs it whole in one dedicated thread, so a
  transaction is one hop from the event loop and back.  Through aiosqlite every statement,
  fetch and commit is such a hop (six or more for a batch of messages), and those hops,
  not SQLite, were most of the CPU and the latency of storing a message.

For SQLite the URL's driver is ignored: ``sqlite+aiosqlite:///chat.db``, the documented
form, runs on sqlite3 like ``sqlite:///chat.db``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, create_engine, event, make_url
from sqlalchemy.ext.asyncio import create_async_engine

T = TypeVar("T")
Work = Callable[..., T]


class Engine(Protocol):
    dialect: str

    async def run(self, work: Work[T], *args: Any) -> T:
        """``work(connection, *args)`` in a transaction, committed when it returns."""
        ...

    async def dispose(self) -> None: ...


class AsyncEngine:
    """A server database through SQLAlchemy's async engine."""

    def __init__(self, url: str) -> None:
        # Check a pooled connection before use, so that a server restart costs a reconnect
        # rather than the next batch of messages.
        self._engine = create_async_engine(url, pool_pre_ping=True)
        self.dialect = self._engine.dialect.name

    async def run(self, work: Work[T], *args: Any) -> T:
        async with self._engine.begin() as connection:
            return await connection.run_sync(work, *args)

    async def dispose(self) -> None:
        await self._engine.dispose()


class ThreadEngine:
    """A SQLite file (or memory) database, every transaction run in one thread of its own."""

    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self._thread: ThreadPoolExecutor | None = None  # started on first use, as the pool
        self._engine = create_engine(make_url(url).set(drivername="sqlite+pysqlite"))
        event.listen(self._engine, "connect", _tune_sqlite)

    async def run(self, work: Work[T], *args: Any) -> T:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="quartchat-sqlite")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transaction, work, args)

    def _transaction(self, work: Work[T], args: tuple[Any, ...]) -> T:
        connection: Connection
        with self._engine.begin() as connection:
            return work(connection, *args)

    async def dispose(self) -> None:
        """Close the connections; the store may be used again (as SQLAlchemy's engines)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._engine.dispose)
            thread.shutdown(wait=False)


def engine_for(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        return ThreadEngine(url)
    return AsyncEngine(url)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers never block the writer; NORMAL sync survives a killed process."""
    cursor = dbapi_connection.cursor()
    # "database is locked", at once: a new file that another process (or engine) is
    # switching or migrating at the same time.  WAL is a property of the file, which that
    # connection sets, and this one follows it from its next transaction.
    with contextlib.suppress(sqlite3.OperationalError):
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
