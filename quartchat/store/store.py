"""The message store: appends in batches, hands out per-room ids, reads history pages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Integer, Select, String, bindparam, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import ReturningInsert

from . import migrate
from .engines import engine_for
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


def _advance_statement(dialect: str) -> ReturningInsert[Any]:
    """``last_id += :count`` for ``:room`` (created at ``:count``), returning it: built once,
    since building it costs more than running it."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    count = bindparam("count", type_=Integer)
    return (
        insert(rooms)
        .values(name=bindparam("room", type_=String), last_id=count)
        .on_conflict_do_update(
            index_elements=[rooms.c.name], set_={"last_id": rooms.c.last_id + count}
        )
        .returning(rooms.c.last_id)
    )


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
        self._advance = _advance_statement(self._engine.dialect)

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
        earlier = _stored_resends(connection, {key for key in keys if key})
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
            last_id = connection.execute(self._advance, {"room": room, "count": count})
            next_id[room] = int(last_id.scalar_one()) - count + 1
        stored: dict[int, StoredMessage] = {}
        for position in fresh:
            new = batch[position]
            stored[position] = StoredMessage(
                new.room, next_id[new.room], new.user, new.text, created_at, new.client_id
            )
            next_id[new.room] += 1
        if stored:
            connection.execute(messages.insert(), [_row(m) for m in stored.values()])
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
        query = select(messages).where(messages.c.room == room)
        if after is not None:
            query = query.where(messages.c.id > after)
        if before is not None:
            query = query.where(messages.c.id < before)
        newest_first = after is None
        order = messages.c.id.desc() if newest_first else messages.c.id.asc()
        with _failures():
            found = await self._engine.run(_select_messages, query.order_by(order).limit(limit))
        return found[::-1] if newest_first else found


def _ping(connection: Connection) -> None:
    connection.execute(text("SELECT 1"))


def _select_messages(connection: Connection, query: Select[Any]) -> list[StoredMessage]:
    return [_message(row._mapping) for row in connection.execute(query)]


def _stored_resends(connection: Connection, keys: set[ResendKey]) -> dict[ResendKey, StoredMessage]:
    """The messages already stored under these (client_id, room, author) keys."""
    if not keys:
        return {}
    columns = tuple_(messages.c.client_id, messages.c.room, messages.c.author)
    query = select(messages).where(columns.in_(sorted(keys)))
    found: dict[ResendKey, StoredMessage] = {}
    for row in connection.execute(query):
        message = _message(row._mapping)
        found[(row.client_id, message.room, message.user)] = message
    return found


def _row(message: StoredMessage) -> dict[str, Any]:
    return {
        "room": message.room,
        "id": message.id,
        "author": message.user,
        "text": message.text,
        "created_at": message.created_at,
        "client_id": message.client_id,
    }


def _message(row: Any) -> StoredMessage:
    created_at = row["created_at"]
    if created_at.tzinfo is None:  # SQLite keeps no zone; we only ever write UTC
        created_at = created_at.replace(tzinfo=UTC)
    return StoredMessage(
        row["room"], row["id"], row["author"], row["text"], created_at, row["client_id"]
    )
