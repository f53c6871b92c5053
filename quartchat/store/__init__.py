"""Durable room history: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from __future__ import annotations

from .migrate import Revisions, SchemaMismatch
from .schema import MAX_ID
from .store import Appended, MessageStore, NewMessage, StoredMessage, StoreUnavailable

__all__ = [
    "MAX_ID",
    "Appended",
    "MessageStore",
    "NewMessage",
    "Revisions",
    "SchemaMismatch",
    "StoreUnavailable",
    "StoredMessage",
]
