"""Stores chat messages in batches, then publishes each, in id order.

Every post waits for the commit of its batch: a message is acknowledged (published and
echoed to its sender) only once it is on disk.  While one batch commits, the next fills up,
so the store sees one transaction per batch however many sockets post at once.
"""

from __future__ import annotations

import asyncio
import logging

from ..aio import cancel_and_wait
from ..broker import Broker
from ..messages import ChatMessage, encode
from ..metrics import CHAT_ACCEPTED
from ..store import MessageStore, NewMessage, StoredMessage, StoreUnavailable
from ..topics import room_topic

log = logging.getLogger(__name__)


Pending = tuple[NewMessage, "asyncio.Future[StoredMessage]"]


def chat_message(stored: StoredMessage) -> ChatMessage:
    return ChatMessage(
        id=stored.id,
        message=stored.text,
        user=stored.user,
        datetime=stored.created_at.isoformat(),
        room=stored.room,
        client_id=stored.client_id,
    )


class ChatWriter:
    def __init__(self, store: MessageStore, broker: Broker, batch_max: int) -> None:
        self._store = store
        self._broker = broker
        self._batch_max = batch_max
        self._pending: asyncio.Queue[Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chat-writer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        while not self._pending.empty():
            _, waiter = self._pending.get_nowait()
            if not waiter.done():
                waiter.set_exception(StoreUnavailable("the server is shutting down"))

    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def submit(self, new: NewMessage) -> asyncio.Future[StoredMessage]:
        """Queue ``new`` to be stored and published; the future resolves to it as stored, or
        fails with :class:`StoreUnavailable`.  Messages are stored in submission order."""
        waiter: asyncio.Future[StoredMessage] = asyncio.get_running_loop().create_future()
        if not self.running():
            waiter.set_exception(StoreUnavailable("the message writer is not running"))
        else:
            self._pending.put_nowait((new, waiter))
        return waiter

    async def post(self, new: NewMessage) -> StoredMessage:
        """Store and publish ``new``; return it as stored.  Raises :class:`StoreUnavailable`."""
        return await self.submit(new)

    async def _run(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while len(batch) < self._batch_max and not self._pending.empty():
                batch.append(self._pending.get_nowait())
            if not await self._write(batch) and len(batch) > 1:
                for single in batch:  # one bad message must fail alone, not its batch
                    await self._write([single])

    async def _write(self, batch: list[Pending]) -> bool:
        """Store, then publish, ``batch``; False if it could not be stored."""
        try:
            stored = await self._store.append_many([new for new, _ in batch])
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the writer must outlive any failure of one batch
            log.error("storing %d message(s) failed: %r", len(batch), error)
            if len(batch) == 1:
                _, waiter = batch[0]
                if not waiter.done():
                    waiter.set_exception(StoreUnavailable("the message store is unavailable"))
            return False
        CHAT_ACCEPTED.inc(sum(appended.new for appended in stored))
        for appended, (_, waiter) in zip(stored, batch, strict=True):
            message = appended.message
            if appended.new:
                # Published even when the poster has gone: it is stored, so members see it.
                await self._publish(message)
            if not waiter.done():
                waiter.set_result(message)
        return True

    async def _publish(self, message: StoredMessage) -> None:
        try:
            await self._broker.publish(room_topic(message.room), encode(chat_message(message)))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # stored all the same: members get it when they resume
            log.error("publishing message %s/%d failed: %r", message.room, message.id, error)
