"""Rules for room and user names, shared by the pages, the sockets and the API.

Both appear in URL paths (``/room/<room>/<user>``), so neither may hold a slash, and a room
name made only of dots would be folded away by the browser's path normalisation.
"""

from __future__ import annotations

import re

ROOM_MAX = 64
USER_MAX = 32

_ROOM = re.compile(r"[\w.-]+")
_USER = re.compile(r"[^\W_][\w .'-]*")  # first: a letter or digit


class InvalidName(ValueError):
    """A room or user name breaks the rules; the message says how, for the person who typed it."""


def check_room(value: str) -> str:
    """Return the room name unchanged, or raise :class:`InvalidName`."""
    if not value:
        raise InvalidName("Please enter a room name.")
    if len(value) > ROOM_MAX:
        raise InvalidName(f"Room names are at most {ROOM_MAX} characters.")
    if not _ROOM.fullmatch(value) or set(value) == {"."}:
        raise InvalidName("Room names may use letters, digits, '-', '_' and '.' only.")
    return value


def check_user(value: str) -> str:
    """Return the display name unchanged, or raise :class:`InvalidName`."""
    if not value or not value.strip():
        raise InvalidName("Please enter your name.")
    if len(value) > USER_MAX:
        raise InvalidName(f"Names are at most {USER_MAX} characters.")
    if value != value.strip() or not _USER.fullmatch(value):
        raise InvalidName(
            "Names start with a letter or digit and may use letters, digits, spaces, "
            "and - _ . ' only."
        )
    return value
