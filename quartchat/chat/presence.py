"""Who is in which room.

Counts sockets per (room, user) so that a person with two tabs open joins once and leaves
when the last tab closes.  :class:`LocalPresence` knows the sockets of its own process;
:class:`~.redis_presence.RedisPresence` shares them between processes and hosts.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from ..metrics import ROOMS_WITH_MEMBERS


class Presence(Protocol):
    async def join(self, room: str, user: str) -> bool:
        """Count one more socket of ``user`` in ``room``; True if it is the user's first."""

    async def leave(self, room: str, user: str) -> bool:
        """Count one socket fewer; True if that was the user's last in the room."""

    async def members(self, room: str) -> list[str]: ...

    async def rooms(self) -> list[tuple[str, int]]:
        """Rooms with anyone in them and how many people each, busiest first."""

    async def renew(self) -> None:
        """Keep this process's members listed (shared versions hold them on leases)."""

    async def sweep(self) -> list[tuple[str, str]]:
        """Forget members whose process stopped renewing; return the (room, user) pairs
        that left the room with them."""


class LocalPresence:
    def __init__(self) -> None:
        self._rooms: dict[str, Counter[str]] = {}

    async def join(self, room: str, user: str) -> bool:
        sockets = self._rooms.setdefault(room, Counter())
        sockets[user] += 1
        ROOMS_WITH_MEMBERS.set(len(self._rooms))
        return sockets[user] == 1

    async def leave(self, room: str, user: str) -> bool:
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
        counts = [(room, len(sockets)) for room, sockets in self._rooms.items()]
        return sorted(counts, key=lambda item: (-item[1], item[0]))

    async def renew(self) -> None:
        pass

    async def sweep(self) -> list[tuple[str, str]]:
        return []

    def local(self) -> list[tuple[str, str]]:
        """The (room, user) pairs with a socket in this process."""
        return [(room, user) for room, sockets in self._rooms.items() for user in sockets]
