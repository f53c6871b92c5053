"""A socket's bounded inbox, fed by the broker and read by the socket's sender task."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator


class SlowConsumer(Exception):
    """The inbox overflowed: the socket did not keep up and must be closed."""


class Subscriber:
    """Bounded queue of encoded frames.

    The broker calls :meth:`deliver`, which never blocks: when the queue is full the
    subscriber is marked overflowed and the :attr:`overflow` future is done, so the socket
    can be closed even while its sender is stuck writing to a peer that stopped reading.

    Not an :class:`asyncio.Queue`: this is the one step every fan-out delivery takes, and a
    deque with a single waiter does it with less work (no getter list, no loop lookup per
    call, which on Python 3.11 is a ``getpid`` system call).
    """

    def __init__(self, max_queue: int) -> None:
        self._items: deque[str] = deque()
        self._max_queue = max_queue
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._full = False  # mirrors overflow, cheaper to test on every delivery
        self.overflow: asyncio.Future[None] = self._loop.create_future()
        self.topics: set[str] = set()

    def deliver(self, text: str) -> None:
        if self._full:
            return
        if len(self._items) >= self._max_queue:
            self._full = True
            self.overflow.set_result(None)
            return
        self._items.append(text)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def overflowed(self) -> None:
        """Return once the queue has overflowed (:attr:`overflow` is done)."""
        await asyncio.wait([self.overflow])

    async def get(self) -> str:
        """The next frame, waiting for one if need be (one reader at a time)."""
        await self.wait()
        return self._items.popleft()

    async def get_all(self) -> list[str]:
        """Every frame queued, at least one, waiting for one if need be: a sender woken
        once handles all that arrived meanwhile."""
        await self.wait()
        items = list(self._items)
        self._items.clear()
        return items

    async def wait(self) -> None:
        while not self._items:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            yield await self.get()
