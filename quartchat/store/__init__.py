"""Durable room history: SQLAlchemy's async core over SQLite (default) or PostgreSQL."""

from __future__ import annotations

from .store import Appended, MessageStore, NewMessage, StoredMessage, StoreUnavailable

__all__ = ["Appended", "MessageStore", "NewMessage", "StoreUnavailable", "StoredMessage"]
