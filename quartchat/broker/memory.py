"""The in-process backend: no other service, one process only."""

from __future__ import annotations

import asyncio

from .base import Published


class MemoryBackend:
    """Publishes onto one unbounded queue read by the broker's listener.

    Unbounded on purpose: publishers never block, and the listener drains it at once into the
    subscribers' own bounded queues, where slow consumers are dealt with.  Never unavailable:
    a broker on it stays connected from start to stop.
    """

    def __init__(self) -> None:
        self._published: asyncio.Queue[Published] = asyncio.Queue()
        self._handed_out = False

    async def connect(self) -> None:
        pass

    async def disconnect(self) -> None:
        pass

    async def subscribe(self, topic: str) -> None:
        # Confirmed once everything published so far has been fanned out, so that (as with
        # a real engine) a new subscription never sees messages published before it.
        await self._published.join()

    async def unsubscribe(self, topic: str) -> None:
        pass

    async def publish(self, topic: str, text: str) -> None:
        self._published.put_nowait(Published(topic, text))

    async def next_published(self) -> Published:
        if self._handed_out:  # the listener asks again: the previous one was fanned out
            self._published.task_done()
        self._handed_out = False
        published = await self._published.get()
        self._handed_out = True
        return published

    async def ping(self) -> None:
        pass
