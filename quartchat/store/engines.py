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
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, create_engine, event, make_url
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import create_async_engine

T = TypeVar("T")
Work = Callable[..., T]


class Engine(Protocol):
    dialect: Dialect

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
        self.dialect = self._engine.dialect

    async def run(self, work: Work[T], *args: Any) -> T:
        async with self._engine.begin() as connection:
            return await connection.run_sync(work, *args)

    async def dispose(self) -> None:
        await self._engine.dispose()


class ThreadEngine:
    """A SQLite file (or memory) database, every transaction run in one thread of its own."""

    def __init__(self, url: str) -> None:
        self._thread: _Worker | None = None  # started on first use, as the pool
        self._engine = create_engine(make_url(url).set(drivername="sqlite+pysqlite"))
        event.listen(self._engine, "connect", _tune_sqlite)
        self.dialect = self._engine.dialect

    async def run(self, work: Work[T], *args: Any) -> T:
        if self._thread is None:
            self._thread = _Worker("quartchat-sqlite")
        return await self._thread.run(self._transaction, work, args)

    def _transaction(self, work: Work[T], args: tuple[Any, ...]) -> T:
        connection: Connection
        with self._engine.begin() as connection:
            return work(connection, *args)

    async def dispose(self) -> None:
        """Close the connections; the store may be used again (as SQLAlchemy's engines)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await thread.run(self._engine.dispose)
            thread.stop()


class _Worker:
    """A thread running the calls handed to it one at a time, in order; each result comes
    back to the caller's event loop.

    Not a ``ThreadPoolExecutor``: every ``run_in_executor`` also makes a concurrent future,
    chains it to an asyncio one and checks whether to start another thread, which cost the
    event loop about 100 µs per transaction, as much as SQLite spends on it.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._calls.put((function, args, done, loop))
        return await done

    def stop(self) -> None:
        """The thread ends once the calls queued before are done."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            function, args, done, loop = call
            try:
                result = function(*args)
            except BaseException as error:  # handed to the caller, whatever it is
                loop.call_soon_threadsafe(_settle, done, None, error)
            else:
                loop.call_soon_threadsafe(_settle, done, result, None)


_Call = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.cancelled():  # the caller stopped waiting; the call itself ran all the same
        return
    if error is None:
        done.set_result(result)
    else:
        done.set_exception(error)


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
