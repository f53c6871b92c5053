"""A room member that outlives its server: the client side of docs/protocol.md's resume.

It reconnects with ``?since=`` the last id it showed, backing off with full jitter when it
is refused (connection refused, HTTP 503, close 1013); shows each chat message once, in id
order, dropping any at or below the last it showed; and re-sends the messages it never saw
acknowledged (echoed with their ``client_id``) once the replay is complete, with the same
``client_id``, which the store keeps only once.  Used by the fault tests and by
``bench/storm.py``; everything it saw stays in its attributes for the caller to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

PROTOCOL = Subprotocol("quartchat.v1")
OPEN_TIMEOUT_SECONDS = 10.0
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 1.0
HISTORY_PAGE = 200


def jittered_backoff(
    first: float = BACKOFF_FIRST_SECONDS, most: float = BACKOFF_MAX_SECONDS
) -> Iterator[float]:
    """Full jitter: a random delay up to ``first``, then up to twice that... capped at
    ``most``, so a crowd refused at once does not come back at once."""
    ceiling = first
    while True:
        yield random.uniform(0, ceiling)
        ceiling = min(ceiling * 2, most)


class Member:
    """One user's socket in one room, reconnecting until :meth:`close`.

    Arguments:
        ws_url: the server, ``ws://host:port``.
        room, user: where and who.
        window: at most this many of its own messages unacknowledged at once.
    """

    def __init__(self, ws_url: str, room: str, user: str, window: int = 4) -> None:
        self.url = f"{ws_url}/ws/room/{quote(room)}/{quote(user)}/"
        self.room = room
        self.user = user
        self.window = window
        self.shown: list[int] = []  # ids of the chat messages shown, in order
        self.dropped = 0  # chat messages at or below the last id shown (client-side dedup)
        self.acknowledged: dict[str, int] = {}  # client_id -> id
        self.unacknowledged: dict[str, str] = {}  # client_id -> text, sent, not echoed
        self.resent: set[str] = set()  # client_ids sent again after a reconnect
        self.outbox: list[tuple[str, str]] = []  # (client_id, text) not sent yet
        self.sessions = 0  # connections that got as far as a complete replay
        self.events: Counter[str] = Counter()  # why connections failed or ended, errors
        self.live = False  # replay complete on the current connection
        self._posted = 0
        self._connection: ClientConnection | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def last_id(self) -> int:
        return self.shown[-1] if self.shown else 0

    def __repr__(self) -> str:
        return (
            f"<Member {self.user}@{self.room} last_id={self.last_id} sessions={self.sessions} "
            f"live={self.live} unacknowledged={len(self.unacknowledged)} "
            f"outbox={len(self.outbox)} events={dict(self.events)} task={self._task}>"
        )

    @property
    def settled(self) -> bool:
        """Everything it was given to post is acknowledged."""
        return not self.outbox and not self.unacknowledged

    async def post(self, count: int = 1) -> None:
        """Queue ``count`` new messages (unique client_ids); they go out within the window
        while connected, else after the next replay."""
        for _ in range(count):
            self._posted += 1
            client_id = f"{self.user}.{self._posted}"
            self.outbox.append((client_id, f"{self.user} says {self._posted}"))
        if self._connection is not None and self.live:
            with contextlib.suppress(ConnectionClosed):  # the session sees it and reconnects
                await self._fill(self._connection)

    def start(self) -> None:
        """Run :meth:`run` in a task of its own until :meth:`stop`."""
        self._task = asyncio.create_task(self.run(), name=f"member-{self.user}")

    async def stop(self) -> None:
        """Close, and wait for the task; raises what made it fail, if anything did."""
        await self.close()
        if self._task is not None:
            await self._task

    async def run(self) -> None:
        """Connect, and reconnect whenever the connection fails or ends, until closed."""
        delays = jittered_backoff()
        while not self._closing:
            sessions = self.sessions
            reason = await self._connect_once()
            if self._closing:
                return
            self.events[reason] += 1
            if self.sessions > sessions:  # it got in: the next refusal starts a new backoff
                delays = jittered_backoff()
            await asyncio.sleep(next(delays))

    async def close(self) -> None:
        self._closing = True
        if self._connection is not None:
            await self._connection.close()

    async def _connect_once(self) -> str:
        """One connection, from handshake to end; returns why it ended."""
        try:
            async with connect(
                f"{self.url}?since={self.last_id}",
                subprotocols=[PROTOCOL],
                open_timeout=OPEN_TIMEOUT_SECONDS,
                close_timeout=2,
                max_size=None,
            ) as connection:
                self._connection = connection
                if self._closing:  # close() came during the handshake
                    return "closed"
                return await self._session(connection)
        except InvalidStatus as error:
            return f"http {error.response.status_code}"
        except ConnectionClosed as error:
            return f"close {error.rcvd.code if error.rcvd else 1006}"
        except (OSError, TimeoutError, InvalidHandshake, EOFError) as error:
            return type(error).__name__
        finally:
            self._connection = None
            self.live = False

    async def _session(self, connection: ClientConnection) -> str:
        while True:
            frame = json.loads(await connection.recv())
            kind = frame["type"]
            if kind == "history":
                for message in frame["messages"]:
                    self._show(message)
                if frame["complete"] and not self.live:
                    self.live = True
                    self.sessions += 1
                    await self._resend(connection)
                    await self._fill(connection)
            elif kind == "chat_message":
                self._show(frame)
                await self._fill(connection)
            elif kind == "error":
                self.events[f"error {frame['code']}"] += 1
                if frame["code"] == "unavailable":  # not stored: come back later, resend
                    await connection.close()
                    return "error unavailable"

    def _show(self, message: dict[str, Any]) -> None:
        if message["id"] <= self.last_id:
            self.dropped += 1
            return
        self.shown.append(message["id"])
        client_id = message.get("client_id")
        if message["user"] == self.user and client_id in self.unacknowledged:
            del self.unacknowledged[client_id]
            self.acknowledged[client_id] = message["id"]

    async def _resend(self, connection: ClientConnection) -> None:
        for client_id, text in list(self.unacknowledged.items()):
            self.resent.add(client_id)
            await connection.send(_message_frame(client_id, text))

    async def _fill(self, connection: ClientConnection) -> None:
        while self.outbox and len(self.unacknowledged) < self.window:
            client_id, text = self.outbox.pop(0)
            self.unacknowledged[client_id] = text
            await connection.send(_message_frame(client_id, text))


def _message_frame(client_id: str, text: str) -> str:
    return json.dumps({"type": "message", "message": text, "client_id": client_id})


def room_history(http_url: str, room: str) -> list[dict[str, Any]]:
    """Every stored message of ``room``, oldest first, read page by page over the HTTP API
    (blocking: call it in a thread)."""
    messages: list[dict[str, Any]] = []
    while True:
        after = messages[-1]["id"] if messages else 0
        url = f"{http_url}/api/rooms/{quote(room)}/messages?after={after}&limit={HISTORY_PAGE}"
        with urllib.request.urlopen(url, timeout=10) as response:
            page = json.load(response)["messages"]
        messages.extend(page)
        if len(page) < HISTORY_PAGE:
            return messages
