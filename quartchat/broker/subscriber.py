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


SUPERSEDED = Frame("")  # the place of a frame a later one replaced


class ConflatingSubscriber(Subscriber):
    """A subscriber for state rather than events: a frame that ``key`` gives a key replaces
    the queued frame with the same key, if any, and is queued at its own (later) place; frames
    without a key are all kept.  Only those count toward ``max_queue``: the keyed ones are
    bounded by how many keys there are (the people online, for the call directory), not by
    how often their state changes, so a socket that falls behind a busy directory catches
    up on the latest state instead of being closed as too slow.  Read with :meth:`get_all`.
    """

    __slots__ = ("_key", "_keyed", "_superseded")

    def __init__(self, max_queue: int, key: Callable[[str], str | None]) -> None:
        super().__init__(max_queue)
        self._key = key
        self._keyed: dict[str, int] = {}  # key -> where its frame is queued
        self._superseded = 0

    def deliver(self, frame: Frame) -> None:
        if self.overflowed:
            return
        items = self._items
        key = self._key(frame.text)
        if key is None:
            if len(items) - len(self._keyed) - self._superseded >= self._max_queue:
                self.overflowed = True
                if self.on_overflow is not None:
                    self.on_overflow()
                return
        else:
            queued = self._keyed.get(key)
            if queued is not None:
                items[queued] = SUPERSEDED
                self._superseded += 1
            self._keyed[key] = len(items)
        items.append(frame)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Frame:
        raise TypeError("a ConflatingSubscriber is read with get_all()")

    async def get_all(self) -> list[Frame]:
        items = await super().get_all()
        self._keyed.clear()
        if self._superseded:
            self._superseded = 0
            items = [frame for frame in items if frame is not SUPERSEDED]
        return items
