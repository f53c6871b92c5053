"""Tables of the message store (SQLAlchemy core), portable between SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text

from ..names import ROOM_MAX, USER_MAX

metadata = MetaData()

MAX_ID = 2**31 - 1  # message ids are SQL INTEGER (int4 on PostgreSQL)

# One row per room that ever had a message: the counter that hands out per-room ids.
rooms = Table(
    "rooms",
    metadata,
    Column("name", String(ROOM_MAX), primary_key=True),
    Column("last_id", Integer, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("room", String(ROOM_MAX), primary_key=True),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("author", String(USER_MAX), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("client_id", String(64), nullable=True),
    # A client that resends after a reconnect reuses its client_id: stored once only.
    Index("ix_messages_resend", "client_id", "room", "author", unique=True),
)
