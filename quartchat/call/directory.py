"""Who is logged in for calls, under which connection, and whether they are free.

One connection holds a name at a time.  A second login under a live name is refused unless
it comes from the same browser (the ``device`` of its signed session cookie), which then
takes the name over: a reloaded page must not be locked out by its own stale connection.
:class:`LocalDirectory` knows the connections of its own process;
:class:`~.redis_directory.RedisDirectory` shares them between processes and hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Status = Literal["available", "busy"]


@dataclass(slots=True)
class Entry:
    sid: str
    device: str | None
    status: Status = "available"


@dataclass(frozen=True, slots=True)
class Claim:
    granted: bool
    replaced_sid: str | None = None  # the connection the name was taken from, to be closed
    holder_busy: bool = False  # refused because the holder (maybe this browser) is in a call


class Directory(Protocol):
    async def claim(self, name: str, sid: str, device: str | None) -> Claim:
        """Hold ``name`` for connection ``sid``, unless a live connection of another browser
        holds it; a connection of the same ``device`` is replaced (``replaced_sid``), except
        during a call (another tab must not end it)."""

    async def release(self, name: str, sid: str) -> bool:
        """Give the name up if ``sid`` still holds it; True if it did."""

    async def lookup(self, name: str) -> Entry | None: ...

    async def set_status(self, name: str, sid: str, status: Status) -> bool:
        """Record ``status`` if ``sid`` still holds the name; True if it changed."""

    async def online(self) -> list[tuple[str, Status]]:
        """Everyone logged in, by name."""

    async def renew(self) -> None:
        """Keep this process's names held (shared versions hold them on leases)."""

    async def sweep(self) -> list[str]:
        """Free the names whose process stopped renewing; return them."""


class LocalDirectory:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    async def claim(self, name: str, sid: str, device: str | None) -> Claim:
        held = self._entries.get(name)
        if held is not None and (device is None or held.device != device):
            return Claim(granted=False, holder_busy=held.status == "busy")
        if held is not None and held.status == "busy":
            return Claim(granted=False, holder_busy=True)
        self._entries[name] = Entry(sid, device)
        return Claim(granted=True, replaced_sid=held.sid if held else None)

    async def release(self, name: str, sid: str) -> bool:
        held = self._entries.get(name)
        if held is None or held.sid != sid:
            return False
        del self._entries[name]
        return True

    async def lookup(self, name: str) -> Entry | None:
        return self._entries.get(name)

    async def set_status(self, name: str, sid: str, status: Status) -> bool:
        held = self._entries.get(name)
        if held is None or held.sid != sid or held.status == status:
            return False
        held.status = status
        return True

    async def online(self) -> list[tuple[str, Status]]:
        return sorted(
            ((name, entry.status) for name, entry in self._entries.items()),
            key=lambda item: item[0].casefold(),
        )

    async def renew(self) -> None:
        pass

    async def sweep(self) -> list[str]:
        return []
