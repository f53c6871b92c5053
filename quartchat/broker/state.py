"""The broker's connection state, watched by sockets that tell their clients about it."""

from __future__ import annotations

import asyncio


class ConnectionState:
    """Whether the broker is connected to its engine, and a wait for that to change.

    Waiting is level-triggered (the caller says which state it last saw), so no change is
    missed while the caller is busy elsewhere::

        connected = broker.connected
        while True:
            await tell_clients(connected)
            connected = await broker.wait_state_change(connected)
    """

    def __init__(self) -> None:
        self._connected = False
        self._changed: asyncio.Future[None] | None = None  # done at the next change

    @property
    def connected(self) -> bool:
        return self._connected

    def set(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        if self._changed is not None:
            self._changed.set_result(None)  # wakes every current waiter...
            self._changed = None  # ...while later ones wait for the next change

    def changed(self, seen: bool) -> asyncio.Future[None]:
        """A future done once the state differs from ``seen`` (already done if it does).
        Shared by every waiter: wait for it with :func:`asyncio.wait`, which never cancels
        it, rather than awaiting it directly."""
        if self._connected != seen:
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    async def wait_change(self, seen: bool) -> bool:
        """Return the state once it differs from ``seen``: at once if it already does, else
        at the next change.  The state returned equals ``seen`` only after a flap (down and
        up again before the waiter ran): an outage all the same, so messages may be missing.
        """
        await asyncio.wait([self.changed(seen)])
        return self._connected
