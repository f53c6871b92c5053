"""A socket's bounded inbox, fed by the broker and read by the socket's sender task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class SlowConsumer(Exception):
    """The inbox overflowed: the socket did not keep up and must be closed (raised by the
    socket's watchdog once :meth:`Subscriber.overflowed` returns)."""


class Subscriber:
    """Bounded queue of encoded frames.

    The broker calls :meth:`deliver`, which never blocks: when the queue is full the
    subscriber is marked overflowed and :meth:`overflowed` resolves, so the socket can be
    closed even while its sender is stuck writing to a peer that stopped reading.
    """

    def __init__(self, max_queue: int) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue(max_queue)
        self._overflow = asyncio.Event()
        self.topics: set[str] = set()

    def deliver(self, text: str) -> None:
        if self._overflow.is_set():
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            self._overflow.set()

    async def overflowed(self) -> None:
        """Return once the queue has overflowed (meant to run as a watchdog task)."""
        await self._overflow.wait()

    async def get(self) -> str:
        return await self._queue.get()

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            yield await self.get()
