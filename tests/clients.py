"""What websocket clients of the tests say and read: call frames, chat messages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection

from .conftest import receive_json


def call_frame(kind: str, **data: Any) -> str:
    """A frame of the call socket: ``{"type": kind, "data": {...}}``."""
    return json.dumps({"type": kind, "data": data})


async def chat(connection: Any, count: int) -> list[tuple[int, str]]:
    """The next ``count`` chat messages as (id, text)."""
    got = []
    while len(got) < count:
        frame = await receive_json(connection, timeout=10)
        if frame["type"] == "chat_message":
            got.append((frame["id"], frame["message"]))
    return got


async def chat_at_once(ada: ClientConnection, bob: ClientConnection, each: int) -> None:
    """Both post ``each`` messages at the same time into a fresh room; each must see all of
    them once, both in the same order, ids from 1 without a gap."""
    texts = [f"{who}-{n}" for n in range(each) for who in ("ada", "bob")]

    async def send(connection: ClientConnection, who: str) -> None:
        for text in texts:
            if text.startswith(who):
                await connection.send(json.dumps({"message": text}))

    await asyncio.gather(send(ada, "ada"), send(bob, "bob"))
    seen_by_ada, seen_by_bob = await chat(ada, 2 * each), await chat(bob, 2 * each)
    assert seen_by_ada == seen_by_bob
    assert [message_id for message_id, _ in seen_by_ada] == list(range(1, 2 * each + 1))
    assert sorted(text for _, text in seen_by_ada) == sorted(texts)
