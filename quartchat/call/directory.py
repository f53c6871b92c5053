"""Who is logged in for calls, under which connection, and whether they are free.

One connection holds a name at a time.  A second login under a live name is refused unless
it comes from the same browser (the ``device`` of its signed session cookie), which then
takes the name over: a reloaded page must not be locked out by its own stale connection.
This version knows the connections of its own process; the interface is async so that a
shared (Redis, with leases) version can replace it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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


class Directory:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    async def claim(self, name: str, sid: str, device: str | None) -> Claim:
        held = self._entries.get(name)
        if held is not None and (device is None or held.device != device):
            return Claim(granted=False)
        self._entries[name] = Entry(sid, device)
        return Claim(granted=True, replaced_sid=held.sid if held else None)

    async def release(self, name: str, sid: str) -> bool:
        """Give the name up if ``sid`` still holds it; True if it did."""
        held = self._entries.get(name)
        if held is None or held.sid != sid:
            return False
        del self._entries[name]
        return True

    async def lookup(self, name: str) -> Entry | None:
        return self._entries.get(name)

    async def set_status(self, name: str, sid: str, status: Status) -> bool:
        """Record ``status`` if ``sid`` still holds the name; True if it changed."""
        held = self._entries.get(name)
        if held is None or held.sid != sid or held.status == status:
            return False
        held.status = status
        return True

    async def online(self) -> list[tuple[str, Status]]:
        """Everyone logged in, by name."""
        return sorted(
            ((name, entry.status) for name, entry in self._entries.items()),
            key=lambda item: item[0].casefold(),
        )
