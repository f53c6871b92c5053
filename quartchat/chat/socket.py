"""The room websocket: ``/ws/room/<room>/<user>/``.

One data path for a chat message: validate the frame -> the writer stores it (its id comes
from the store) -> the broker publishes the encoded text once -> every subscribed socket's
sender writes that same text.  The socket subscribes before it reads history, so a message
stored during the replay is either in the replay or arrives live; live copies of replayed
messages are dropped by id, and nothing is lost or shown twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from typing import NoReturn

from ..asgi_socket import ASGISocket, received
from ..broker import BrokerUnavailable, Frame, Subscriber
from ..messages import (
    FrameError,
    History,
    MemberJoined,
    MemberLeft,
    Presence,
    StartTyping,
    Typing,
    encode,
    error_frame,
    parse_room_frame,
)
from ..services import Services
from ..sockets import PROTOCOL, CloseCode, CloseSocket, run_duplex
from ..store import NewMessage, StoredMessage, StoreUnavailable
from ..topics import room_topic
from .rules import Throttle, TokenBucket, check_message
from .writer import chat_message

log = logging.getLogger(__name__)

POSTS_IN_FLIGHT = 32  # one socket's messages queued for the store at once
GAP_WAIT_SECONDS = 0.5  # how long a message that skips ids waits for the ones before it
ERROR_PREFIX = '{"type":"error"'


class RoomSession:
    """One accepted room socket: ``extended`` if the client asked for :data:`PROTOCOL`."""

    __slots__ = ("extended", "limits", "room", "services", "since", "socket", "topic", "user")

    def __init__(
        self,
        services: Services,
        socket: ASGISocket,
        room: str,
        user: str,
        extended: bool,
        since: int | None = None,
    ) -> None:
        self.services = services
        self.socket = socket
        self.since = since
        self.limits = services.settings.limits
        self.room = room
        self.user = user
        self.topic = room_topic(room)
        self.extended = extended

    async def run(self) -> None:
        """Replay what the client asked for (the room's latest messages, or everything after
        ``since``), then carry the room's events both ways until the socket closes."""
        broker, presence = self.services.broker, self.services.presence
        async with broker.subscribe(self.topic, max_queue=self.limits.queue_length) as inbox:
            first_socket = await presence.join(self.room, self.user)
            try:
                if first_socket:
                    await self._announce(MemberJoined)
                await self.socket.accept(subprotocol=PROTOCOL if self.extended else None)
                await run_duplex(
                    lambda: self._receive(inbox),
                    lambda: self._send(inbox, self.since),
                    inbox,
                    self.services.sockets,
                    "room",
                    self.socket.close,
                )
            finally:
                if await presence.leave(self.room, self.user):
                    try:
                        await self._announce(MemberLeft)
                    except BrokerUnavailable:
                        log.warning(
                            "%s left %s while the broker is unavailable", self.user, self.room
                        )

    async def _announce(self, event: type[MemberJoined | MemberLeft]) -> None:
        """Tell the room this member came or went (no local: the frame of :meth:`run` lives
        as long as the socket, and would keep the event)."""
        await self.services.broker.publish(
            self.topic, encode(event(user=self.user, datetime=_now()))
        )

    # -- outbound --------------------------------------------------------------------------

    async def _send(self, inbox: Subscriber, since: int | None) -> None:
        """Replay, then relay live events; chat messages strictly in id order, each once.

        Ids of a room have no gaps, so a message whose id is more than one past the last sent
        means another one is still on its way (published by another process, or lost with
        it): it is held for up to :data:`GAP_WAIT_SECONDS`, then the gap is read from the
        store.  Ids at or below the last sent are replays' duplicates and are dropped.
        """
        try:
            last_id = await self._replay(since)
        except StoreUnavailable:
            await self._store_failed()
        held: dict[int, Frame] = {}
        send = self.socket.send
        while True:
            if not held:
                frames = await inbox.get_all()
            else:
                try:
                    async with asyncio.timeout(GAP_WAIT_SECONDS):
                        frames = await inbox.get_all()
                except TimeoutError:
                    last_id = await self._fill_gap(last_id, held)
                    continue
            for frame in frames:
                message_id = frame.chat_id
                if message_id is None:
                    # The seed dialect knows chat messages and errors only.
                    if self.extended or frame.text.startswith(ERROR_PREFIX):
                        await send(frame.event)
                elif message_id == last_id + 1 and not held:  # the usual case
                    last_id = message_id
                    await send(frame.event)
                elif message_id > last_id:
                    held[message_id] = frame
                    while last_id + 1 in held:
                        last_id += 1
                        await send(held.pop(last_id).event)

    async def _fill_gap(self, last_id: int, held: dict[int, Frame]) -> int:
        """Send what the store has after ``last_id`` up to the newest held message."""
        target = max(held)
        try:
            while last_id < target:
                page = await self.services.store.page(
                    self.room, after=last_id, limit=min(target - last_id, self.limits.page_max)
                )
                if not page:
                    break
                for stored in page:
                    await self.socket.send_text(encode(chat_message(stored)))
                last_id = page[-1].id
        except StoreUnavailable:
            await self._store_failed()
        for message_id in [key for key in held if key <= last_id]:
            del held[message_id]
        while last_id + 1 in held:
            last_id += 1
            await self.socket.send(held.pop(last_id).event)
        return last_id

    async def _store_failed(self) -> NoReturn:
        """Without the store there is no gap-free stream: tell the client to come back."""
        await self.socket.send_text(
            error_frame(FrameError("unavailable", "History is unavailable; reconnect later."))
        )
        raise CloseSocket(CloseCode.TRY_AGAIN_LATER, "message store unavailable")

    async def _replay(self, since: int | None) -> int:
        """Send the member list and the history (or what came after ``since``); return the
        last id sent."""
        if self.extended:
            members = await self.services.presence.members(self.room)
            presence = Presence(room=self.room, user=self.user, members=members)
            await self.socket.send_text(encode(presence))
        if since is not None:
            # A client ahead of the store (say, after the database was reset) would otherwise
            # drop every new message as already seen: resume from what the store has.
            latest = await self.services.store.page(self.room, limit=1)
            since = min(since, latest[-1].id if latest else 0)
        last_id = since or 0
        async for page, complete in self._history(since):
            messages = [chat_message(stored) for stored in page]
            if self.extended:
                history = History(messages=messages, since=since, complete=complete)
                await self.socket.send_text(encode(history))
            else:
                for message in messages:
                    await self.socket.send_text(encode(message))
            if page:
                last_id = page[-1].id
        return last_id

    async def _history(self, since: int | None) -> AsyncIterator[tuple[list[StoredMessage], bool]]:
        """The last messages on entry; on resume, everything after ``since``, page by page.
        Yields each page with whether it is the last."""
        store = self.services.store
        if since is None:
            yield await store.page(self.room, limit=self.limits.history_on_join), True
            return
        limit = self.limits.page_max
        while True:
            page = await store.page(self.room, after=since, limit=limit)
            complete = len(page) < limit
            yield page, complete
            if complete:
                return
            since = page[-1].id

    # -- inbound ---------------------------------------------------------------------------

    async def _receive(self, inbox: Subscriber) -> None:
        """Handle inbound frames.  Errors go back through the bounded inbox, so a client that
        floods bad frames without reading is closed as a slow consumer, never buffered for.

        A message is handed to the writer and the next frame read at once: its echo (the
        acknowledgement) comes through the broker once stored, and a failure as an error
        event.  So one client's messages share transactions (group commit) instead of
        waiting for a commit each; beyond :data:`POSTS_IN_FLIGHT` the socket stops reading.
        """
        bucket = TokenBucket(self.limits.rate_per_second, self.limits.rate_burst)
        typing = Throttle(self.limits.typing_interval_seconds)
        posts: list[asyncio.Future[StoredMessage]] = []  # at most POSTS_IN_FLIGHT
        receive = self.socket.receive
        while True:
            frame = received(await receive())
            if frame is None:
                continue
            try:
                new = await self._handle(frame, bucket, typing)
            except FrameError as error:
                inbox.deliver_text(error_frame(error))
                continue
            if new is None:
                continue
            posts = [post for post in posts if not post.done()]
            if len(posts) >= POSTS_IN_FLIGHT:
                await asyncio.wait([posts.pop(0)])
            stored = self.services.writer.submit(new)
            stored.add_done_callback(partial(_report_failure, inbox, new.client_id))
            posts.append(stored)

    async def _handle(
        self, raw: str | bytes, bucket: TokenBucket, typing: Throttle
    ) -> NewMessage | None:
        """The message to store, if ``raw`` is one.  Typing notices have their own throttle
        (extras are dropped); every other frame, valid or not, takes a token from the rate
        limit's bucket."""
        try:
            frame = parse_room_frame(raw)
        except FrameError:
            bucket.take()
            raise
        if isinstance(frame, StartTyping):
            if typing.ready():
                await self.services.broker.publish(self.topic, encode(Typing(user=self.user)))
            return None
        client_id = frame.client_id
        if not bucket.take():
            raise FrameError("rate_limited", "Too many messages: slow down.", client_id)
        try:
            text = check_message(frame.message, self.limits.message_max_chars)
        except FrameError as error:
            raise FrameError(error.code, error.message, client_id) from None
        return NewMessage(self.room, self.user, text, client_id)


def _report_failure(
    inbox: Subscriber, client_id: str | None, stored: asyncio.Future[StoredMessage]
) -> None:
    error = None if stored.cancelled() else stored.exception()
    if error is not None:
        failure = FrameError("unavailable", f"Not sent: {error}.", client_id)
        inbox.deliver_text(error_frame(failure))


def _now() -> str:
    return datetime.now(UTC).isoformat()
