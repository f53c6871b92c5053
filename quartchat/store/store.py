"""The message store: appends in batches, hands out per-room ids, reads history pages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Integer, String, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError

from . import migrate
from .engines import engine_for
from .prepared import Prepared
from .schema import messages, rooms


class StoreUnavailable(Exception):
    """The database failed or cannot be reached; nothing was written."""


@contextmanager
def _failures() -> Iterator[None]:
    try:
        yield
    except (SQLAlchemyError, OSError) as error:  # OSError: asyncpg's refused or timed out
        raise StoreUnavailable(str(error).splitlines()[0]) from error


@dataclass(frozen=True, slots=True)
class NewMessage:
    room: str
    user: str
    text: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    room: str
    id: int
    user: str
    text: str
    created_at: datetime
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Appended:
    message: StoredMessage
    new: bool  # False: a resend (same room, user and client_id) of a message stored before


ResendKey = tuple[str, str, str]


class Statements:
    """The store's statements on the path of every message and every join, prepared for one
    dialect (see :mod:`.prepared`)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        count = bindparam("count", type_=Integer)
        advance = (  # last_id += :count for :room (created at :count), returning it
            insert(rooms)
            .values(name=bindparam("room", type_=String), last_id=count)
            .on_conflict_do_update(
                index_elements=[rooms.c.name], set_={"last_id": rooms.c.last_id + count}
            )
            .returning(rooms.c.last_id)
        )
        self.advance = Prepared(advance, dialect, [rooms.c.last_id])
        self.insert = Prepared(messages.insert(), dialect)
        self._pages: dict[tuple[bool, bool], Prepared] = {}
        self._resends: dict[int, Prepared] = {}

    def page(self, after: bool, before: bool) -> Prepared:
        """Messages of ``:room`` (after ``:after``, before ``:before``), ``:limit`` of them:
        the first ones after ``after``, else the last ones, newest first."""
        key = (after, before)
        if key not in self._pages:
            query = select(messages).where(messages.c.room == bindparam("room"))
            if after:
                query = query.where(messages.c.id > bindparam("after", type_=Integer))
            if before:
                query = query.where(messages.c.id < bindparam("before", type_=Integer))
            order = messages.c.id.asc() if after else messages.c.id.desc()
            query = query.order_by(order).limit(bindparam("limit", type_=Integer))
            self._pages[key] = Prepared(query, self._dialect, list(messages.columns))
        return self._pages[key]

    def resends(self, count: int) -> tuple[Prepared, int]:
        """Messages with any of ``:c0``... ``:c<size-1>`` as their client_id, and ``size``:
        the power of two at or above ``count``, so a handful of statements serve any batch
        (the caller repeats an id to fill it)."""
        size = 1 << max(0, count - 1).bit_length()
        if size not in self._resends:
            ids = [bindparam(f"c{i}", type_=String) for i in range(size)]
            query = select(messages).where(messages.c.client_id.in_(ids))
            self._resends[size] = Prepared(query, self._dialect, list(messages.columns))
        return self._resends[size], size


def _resend_key(new: NewMessage) -> ResendKey | None:
    return None if new.client_id is None else (new.client_id, new.room, new.user)


class MessageStore:
    """Room history in a SQL database chosen by URL.

    ``append_many`` writes a whole batch in one transaction (group commit): the caller
    acknowledges nothing until it returns, so every acknowledged message is on disk.
    The queries are plain functions of a connection, run by :mod:`.engines`.
    """

    def __init__(self, url: str) -> None:
        self._engine = engine_for(url)
        self._statements = Statements(self._engine.dialect)

    async def open(self) -> None:
        """Check the schema; an empty database is migrated to head first.

        Raises :class:`~quartchat.store.migrate.SchemaMismatch` when the database is at
        another revision (or none), and :class:`StoreUnavailable` when it cannot be reached.
        """
        with _failures():
            await self._engine.run(migrate.prepare)

    async def upgrade(self) -> migrate.Revisions:
        """Migrate the database to head (``quartchat db upgrade``); return the revisions
        before."""
        with _failures():
            return await self._engine.run(migrate.upgrade)

    async def revisions(self) -> migrate.Revisions:
        """The database's schema revision and this version's head."""
        with _failures():
            return await self._engine.run(migrate.revisions)

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        with _failures():
            await self._engine.run(_ping)

    async def append_many(self, batch: Sequence[NewMessage]) -> list[Appended]:
        """Store ``batch`` in one transaction; return it with ids, in the same order.

        A message whose client_id its author already used in the room is not stored again:
        its entry is the earlier message, marked ``new=False``.
        """
        created_at = datetime.now(UTC)
        with _failures():
            return await self._engine.run(self._append_many, batch, created_at)

    def _append_many(
        self, connection: Connection, batch: Sequence[NewMessage], created_at: datetime
    ) -> list[Appended]:
        keys = [_resend_key(new) for new in batch]
        earlier = self._stored_resends(connection, {key for key in keys if key})
        first_copy: dict[ResendKey, int] = {}  # a resend within this batch: its first copy
        fresh: list[int] = []  # positions in batch to store
        for position, key in enumerate(keys):
            if key is None or (key not in earlier and key not in first_copy):
                fresh.append(position)
                if key is not None:
                    first_copy[key] = position
        next_id = {}
        # Rooms in name order: concurrent writers (processes) lock their rows in one order,
        # so they queue instead of deadlocking.
        for room, count in sorted(Counter(batch[position].room for position in fresh).items()):
            ((last_id,),) = self._statements.advance.rows(
                connection, {"room": room, "count": count}
            )
            next_id[room] = int(last_id) - count + 1
        stored: dict[int, StoredMessage] = {}
        for position in fresh:
            new = batch[position]
            stored[position] = StoredMessage(
                new.room, next_id[new.room], new.user, new.text, created_at, new.client_id
            )
            next_id[new.room] += 1
        if stored:
            self._statements.insert.execute_many(connection, [_row(m) for m in stored.values()])
        appended = []
        for position, key in enumerate(keys):
            if position in stored:
                appended.append(Appended(stored[position], True))
            else:  # only messages with a client_id are ever resends
                assert key is not None
                original = earlier.get(key) or stored[first_copy[key]]
                appended.append(Appended(original, False))
        return appended

    async def page(
        self,
        room: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int,
    ) -> list[StoredMessage]:
        """Up to ``limit`` messages of ``room`` in id order.

        With ``after``: the first ones after it (resume, paging forward).  Otherwise the
        last ones, before ``before`` when given (entry history, paging back).
        """
        statement = self._statements.page(after is not None, before is not None)
        values = {"room": room, "after": after, "before": before, "limit": limit}
        with _failures():
            rows = await self._engine.run(statement.rows, values)
        found = [_message(row) for row in rows]
        return found if after is not None else found[::-1]

    def _stored_resends(
        self, connection: Connection, keys: set[ResendKey]
    ) -> dict[ResendKey, StoredMessage]:
        """The messages already stored under these (client_id, room, author) keys."""
        if not keys:
            return {}
        ids = sorted({client_id for client_id, _, _ in keys})
        statement, size = self._statements.resends(len(ids))
        padded = ids + ids[-1:] * (size - len(ids))
        found: dict[ResendKey, StoredMessage] = {}
        for row in statement.rows(connection, {f"c{i}": value for i, value in enumerate(padded)}):
            message = _message(row)
            key = (message.client_id or "", message.room, message.user)
            if key in keys:
                found[key] = message
        return found


def _ping(connection: Connection) -> None:
    connection.execute(text("SELECT 1"))


def _row(message: StoredMessage) -> dict[str, Any]:
    return {
        "room": message.room,
        "id": message.id,
        "author": message.user,
        "text": message.text,
        "created_at": message.created_at,
        "client_id": message.client_id,
    }


def _message(row: Sequence[Any]) -> StoredMessage:
    """A row of ``messages``, its columns in the table's order."""
    room, message_id, author, text, created_at, client_id = row
    if created_at.tzinfo is None:  # SQLite keeps no zone; we only ever write UTC
        created_at = created_at.replace(tzinfo=UTC)
    return StoredMessage(room, message_id, author, text, created_at, client_id)
