"""Names of broker topics: built here only, never by f-strings in handlers."""

from __future__ import annotations


def room_topic(room: str) -> str:
    return f"room:{room}"


def user_topic(user: str) -> str:
    return f"user:{user}"


CALL_DIRECTORY_TOPIC = "calls:directory"  # who is online for calls, and their status
