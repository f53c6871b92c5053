"""Who is in which room.

Counts sockets per (room, user) so that a person with two tabs open joins once and leaves
when the last tab closes.  This version knows the sockets of its own process; the interface
is async so that a shared (Redis) version can replace it.
"""

from __future__ import annotations

from collections import Counter

from ..metrics import ROOMS_WITH_MEMBERS


class Presence:
    def __init__(self) -> None:
        self._rooms: dict[str, Counter[str]] = {}

    async def join(self, room: str, user: str) -> bool:
        """Count one more socket of ``user`` in ``room``; True if it is the user's first."""
        sockets = self._rooms.setdefault(room, Counter())
        sockets[user] += 1
        ROOMS_WITH_MEMBERS.set(len(self._rooms))
        return sockets[user] == 1

    async def leave(self, room: str, user: str) -> bool:
        """Count one socket fewer; True if that was the user's last in the room."""
        sockets = self._rooms.get(room)
        if sockets is None or sockets[user] == 0:
            return False
        sockets[user] -= 1
        if sockets[user]:
            return False
        del sockets[user]
        if not sockets:
            del self._rooms[room]
            ROOMS_WITH_MEMBERS.set(len(self._rooms))
        return True

    async def members(self, room: str) -> list[str]:
        return sorted(self._rooms.get(room, ()), key=str.casefold)

    async def rooms(self) -> list[tuple[str, int]]:
        """Rooms with anyone in them and how many people each, busiest first."""
        counts = [(room, len(sockets)) for room, sockets in self._rooms.items()]
        return sorted(counts, key=lambda item: (-item[1], item[0]))
