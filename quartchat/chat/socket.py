"""The room websocket: ``/ws/room/<room>/<user>/``.

One data path for a chat message: validate the frame -> the writer stores it (its id comes
from the store) -> the broker publishes the encoded text once -> every subscribed socket's
sender writes that same text.  The socket subscribes before it reads history, so a message
stored during the replay is either in the replay or arrives live; live copies of replayed
messages are dropped by id, and nothing is lost or shown twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from quart import websocket

from ..broker import Subscriber
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
from ..metrics import chat_delivered
from ..services import Services
from ..sockets import PROTOCOL, CloseCode, CloseSocket, run_duplex
from ..store import NewMessage, StoredMessage, StoreUnavailable
from ..topics import room_topic
from .rules import Throttle, TokenBucket, check_message
from .writer import chat_message

CHAT_PREFIX = '{"type":"chat_message"'
ERROR_PREFIX = '{"type":"error"'


class RoomSession:
    """One accepted room socket: ``extended`` if the client asked for :data:`PROTOCOL`."""

    def __init__(self, services: Services, room: str, user: str, extended: bool) -> None:
        self.services = services
        self.limits = services.settings.limits
        self.room = room
        self.user = user
        self.topic = room_topic(room)
        self.extended = extended

    async def run(self, since: int | None) -> None:
        broker, presence = self.services.broker, self.services.presence
        async with broker.subscribe(self.topic, max_queue=self.limits.queue_length) as inbox:
            first_socket = await presence.join(self.room, self.user)
            try:
                if first_socket:
                    joined = MemberJoined(user=self.user, datetime=_now())
                    await broker.publish(self.topic, encode(joined))
                await websocket.accept(subprotocol=PROTOCOL if self.extended else None)
                await run_duplex(
                    lambda: self._receive(inbox),
                    lambda: self._send(inbox, since),
                    inbox,
                    self.services.sockets,
                    "room",
                )
            finally:
                if await presence.leave(self.room, self.user):
                    await broker.publish(
                        self.topic, encode(MemberLeft(user=self.user, datetime=_now()))
                    )

    # -- outbound --------------------------------------------------------------------------

    async def _send(self, inbox: Subscriber, since: int | None) -> None:
        try:
            last_id = await self._replay(since)
        except StoreUnavailable:
            # Without history there is no gap-free stream: tell the client to come back.
            await websocket.send(
                error_frame(FrameError("unavailable", "History is unavailable; reconnect later."))
            )
            raise CloseSocket(CloseCode.TRY_AGAIN_LATER, "message store unavailable") from None
        catching_up = True
        async for text in inbox:
            if text.startswith(CHAT_PREFIX):
                if catching_up:  # parse only until the first message newer than the replay
                    if json.loads(text)["id"] <= last_id:
                        continue
                    catching_up = False
            elif not (self.extended or text.startswith(ERROR_PREFIX)):
                continue  # the seed dialect knows chat messages and errors only
            await websocket.send(text)
            if text.startswith(CHAT_PREFIX):
                chat_delivered(text)

    async def _replay(self, since: int | None) -> int:
        """Send the member list and the history (or what came after ``since``); return the
        last id sent."""
        if self.extended:
            members = await self.services.presence.members(self.room)
            await websocket.send(encode(Presence(room=self.room, user=self.user, members=members)))
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
                await websocket.send(encode(history))
            else:
                for message in messages:
                    await websocket.send(encode(message))
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
        floods bad frames without reading is closed as a slow consumer, never buffered for."""
        bucket = TokenBucket(self.limits.rate_per_second, self.limits.rate_burst)
        typing = Throttle(self.limits.typing_interval_seconds)
        while True:
            frame = await websocket.receive()
            try:
                await self._handle(frame, bucket, typing)
            except FrameError as error:
                inbox.deliver(error_frame(error))

    async def _handle(self, raw: str | bytes, bucket: TokenBucket, typing: Throttle) -> None:
        """Typing notices have their own throttle (extras are dropped); every other frame,
        valid or not, takes a token from the rate limit's bucket."""
        try:
            frame = parse_room_frame(raw)
        except FrameError:
            bucket.take()
            raise
        if isinstance(frame, StartTyping):
            if typing.ready():
                await self.services.broker.publish(self.topic, encode(Typing(user=self.user)))
            return
        client_id = frame.client_id
        if not bucket.take():
            raise FrameError("rate_limited", "Too many messages: slow down.", client_id)
        try:
            text = check_message(frame.message, self.limits.message_max_chars)
            await self.services.writer.post(NewMessage(self.room, self.user, text, client_id))
        except FrameError as error:
            raise FrameError(error.code, error.message, client_id) from None
        except StoreUnavailable as error:
            raise FrameError("unavailable", f"Not sent: {error}.", client_id) from None


def _now() -> str:
    return datetime.now(UTC).isoformat()
