"""A socket's bounded inbox, fed by the broker and read by the socket's sender task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .frame import Frame


class Subscriber:
    """Bounded queue of frames for one socket.

    The broker calls :meth:`deliver`, which never blocks: when the queue is full the
    subscriber is marked :attr:`overflowed`, drops everything from then on, and calls
    :attr:`on_overflow` once, so the socket can be closed even while its sender is stuck
    writing to a peer that stopped reading.

    Not an :class:`asyncio.Queue`: this is the one step every fan-out delivery takes, and a
    list with a single waiter does it with less work (no getter list, no loop lookup per
    call, which on Python 3.11 is a ``getpid`` system call) and in less memory (an idle
    socket holds an empty list, not three deques of 64 slots each).
    """

    __slots__ = ("_items", "_loop", "_max_queue", "_waiter", "on_overflow", "overflowed", "topics")

    def __init__(self, max_queue: int) -> None:
        self._items: list[Frame] = []
        self._max_queue = max_queue
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.on_overflow: Callable[[], None] | None = None
        self.topics: list[str] = []

    def deliver(self, frame: Frame) -> None:
        if self.overflowed:
            return
        if len(self._items) >= self._max_queue:
            self.overflowed = True
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self._items.append(frame)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # cancelled with its reader
                waiter.set_result(None)

    def deliver_text(self, text: str) -> None:
        """Queue a frame for this socket alone (an error, a reply)."""
        self.deliver(Frame(text))

    async def get(self) -> Frame:
        """The next frame, waiting for one if need be (one reader at a time)."""
        while not self._items:
            await self._wait()
        return self._items.pop(0)

    async def get_all(self) -> list[Frame]:
        """Every frame queued, at least one, waiting for one if need be: a sender woken
        once handles all that arrived meanwhile."""
        while not self._items:
            await self._wait()
        items, self._items = self._items, []
        return items

    def _wait(self) -> asyncio.Future[None]:
        """A future done at the next delivery (a plain future, not a coroutine: an idle
        socket's sender waits on it, and holds nothing more)."""
        self._waiter = self._loop.create_future()
        return self._waiter
