"""The issue's reference point: Starlette with encode/broadcaster's in-memory backend, the
room socket of broadcaster's own chat example, speaking quartchat's chat protocol (a room's
messages get ids and are encoded once, then published; every member's sender task writes
them).  Served by Uvicorn, as that reference was measured:

    uvicorn bench.starlette_chat:app --ws websockets --port 8001
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from .ceiling import chat_message  # ids and encoding as quartchat's

broadcast = Broadcast("memory://")


async def room_socket(websocket: WebSocket) -> None:
    room, user = websocket.path_params["room"], websocket.path_params["user"]
    await websocket.accept()
    async with broadcast.subscribe(channel=room) as subscriber:
        receiver = asyncio.create_task(_receive(websocket, room, user))
        try:
            async for event in subscriber:
                await websocket.send_text(event.message)
        finally:
            receiver.cancel()


async def _receive(websocket: WebSocket, room: str, user: str) -> None:
    async for text in websocket.iter_text():
        await broadcast.publish(room, chat_message(room, user, text))


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    async with broadcast:
        yield


app = Starlette(routes=[WebSocketRoute("/ws/room/{room}/{user}/", room_socket)], lifespan=lifespan)
