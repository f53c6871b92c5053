"""The broker front object: one per process, shared by every socket of the process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..aio import cancel_and_wait
from .base import Backend
from .subscriber import Subscriber

log = logging.getLogger(__name__)

LISTENER_RETRY_SECONDS = 1.0


class Broker:
    """Publish text to topics; subscribe sockets to topics.

    Each published message reaches the backend once; one listener task per process reads
    the backend and puts the same text object into every local subscriber's bounded queue.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._local: dict[str, set[Subscriber]] = {}
        self._changing = asyncio.Lock()  # serialises backend (un)subscribes
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._backend.connect()
        self._listener = asyncio.create_task(self._listen(), name="broker-listener")

    async def stop(self) -> None:
        await cancel_and_wait(self._listener)
        self._listener = None
        await self._backend.disconnect()

    async def publish(self, topic: str, text: str) -> None:
        await self._backend.publish(topic, text)

    async def ping(self) -> None:
        await self._backend.ping()
        if self._listener is None or self._listener.done():
            raise RuntimeError("broker listener is not running")

    @asynccontextmanager
    async def subscribe(self, *topics: str, max_queue: int) -> AsyncIterator[Subscriber]:
        """Subscribe a new bounded inbox to ``topics``; unsubscribe on exit.

        On entry every subscription is live: anything published afterwards is delivered
        (a message published just before may be delivered too; consumers that care, like
        the room socket, de-duplicate by id).
        """
        subscriber = Subscriber(max_queue)
        try:
            for topic in topics:
                await self.add_topic(subscriber, topic)
            yield subscriber
        finally:
            await self._remove_all(subscriber)

    async def add_topic(self, subscriber: Subscriber, topic: str) -> None:
        async with self._changing:
            local = self._local.get(topic)
            if local is None:
                await self._backend.subscribe(topic)
                local = self._local[topic] = set()
            local.add(subscriber)
            subscriber.topics.add(topic)

    async def _remove_all(self, subscriber: Subscriber) -> None:
        emptied = []
        for topic in subscriber.topics:  # synchronously: no delivery to a closed socket
            local = self._local.get(topic)
            if local is not None:
                local.discard(subscriber)
                if not local:
                    del self._local[topic]
                    emptied.append(topic)
        subscriber.topics.clear()
        if emptied:
            async with self._changing:
                for topic in emptied:
                    if topic not in self._local:
                        await self._backend.unsubscribe(topic)

    async def _listen(self) -> None:
        while True:
            try:
                published = await self._backend.next_published()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broker backend failed; retrying")
                await asyncio.sleep(LISTENER_RETRY_SECONDS)
                continue
            for subscriber in self._local.get(published.topic, ()):
                subscriber.deliver(published.text)
