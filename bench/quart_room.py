"""A room socket through Quart that does nothing at all: it accepts, then reads.  What an
idle websocket costs through the framework alone, for the idle scenario: why quartchat's
room socket is served beside Quart (see quartchat/chat/endpoint.py)."""

from __future__ import annotations

from quart import Quart, websocket

app = Quart(__name__)


@app.websocket("/ws/room/<room>/<user>/")
async def room_socket(room: str, user: str) -> None:
    await websocket.accept()
    while True:
        await websocket.receive()
