"""Durable room history: SQLAlchemy's async core over SQLite (default) or PostgreSQL."""

from __future__ import annotations

from .store import MessageStore, NewMessage, StoredMessage, StoreUnavailable

__all__ = ["MessageStore", "NewMessage", "StoreUnavailable", "StoredMessage"]
