"""The ceiling of this stack: a raw ASGI app speaking quartchat's wire protocol with the
leanest possible fan-out, to be served by Hypercorn (or Uvicorn) next to quartchat.

No framework, no store, no validation beyond ``json.loads``, no per-socket task or queue:
a chat message is given the next id of its room, encoded once, and written straight to
every member's socket from the sender's own handler.  The call socket keeps who is online,
relays offers, answers, candidates and hang-ups, and announces status changes to everyone
online, frame for frame what quartchat sends, so the load generator cannot tell the two
apart.  Whatever quartchat spends beyond this is the price of its framework and features.

    python -m bench.serve bench.ceiling:app 8001    # Hypercorn, in this one process
    uvicorn bench.ceiling:app --port 8001
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

ROOM_PREFIX = "/ws/room/"

rooms: dict[str, set[Send]] = {}
last_ids: dict[str, int] = {}
online: dict[str, Send] = {}
peers: dict[str, str] = {}


def _encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def chat_message(room: str, user: str, frame: str) -> str:
    """The next message of ``room``, as quartchat encodes it, from a client's frame."""
    data = json.loads(frame)
    last_ids[room] = message_id = last_ids.get(room, 0) + 1
    return _encode(
        {
            "type": "chat_message",
            "id": message_id,
            "message": data["message"],
            "user": user,
            "datetime": datetime.now(UTC).isoformat(),
            "room": room,
            "client_id": data.get("client_id"),
        }
    )


async def _send_all(members: list[Send], text: str) -> None:
    frame = {"type": "websocket.send", "bytes": None, "text": text}
    for member in members:
        # Not contextlib.suppress, which is an object and two calls per recipient.
        try:  # noqa: SIM105
            await member(frame)
        except Exception:  # closed meanwhile: its handler removes it
            pass


async def room_socket(room: str, user: str, receive: Receive, send: Send) -> None:
    members = rooms.setdefault(room, set())
    members.add(send)  # before the accept: a member hears everything sent after its handshake
    try:
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] != "websocket.receive":
                return
            await _send_all(list(members), chat_message(room, user, event["text"]))
    finally:
        members.discard(send)


async def _status(name: str, status: str) -> None:
    text = _encode({"type": "user_status", "data": {"name": name, "status": status}})
    await _send_all([other for who, other in online.items() if who != name], text)


async def _to(name: str, kind: str, data: dict[str, Any]) -> None:
    target = online.get(name)
    if target is not None:
        await _send_all([target], _encode({"type": kind, "data": data}))


async def call_socket(receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": _encode(_connected)})
    name = ""
    try:
        while True:
            event = await receive()
            if event["type"] != "websocket.receive":
                return
            frame = json.loads(event["text"])
            kind, data = frame["type"], frame["data"]
            if kind == "login":
                name = data["name"]
                users = [{"name": who, "status": "available"} for who in online]
                online[name] = send
                await _to(name, "logged_in", {"name": name, "users": users})
                await _status(name, "available")
            elif kind == "call":
                callee = data["name"]
                peers[name], peers[callee] = callee, name
                await _status(name, "busy")
                await _to(
                    callee, "call_received", {"caller": name, "rtcMessage": data["rtcMessage"]}
                )
                await _status(callee, "busy")
                await _to(name, "ringing", {"name": callee})
            elif kind == "answer_call":
                await _to(
                    data["caller"],
                    "call_answered",
                    {"rtcMessage": data["rtcMessage"], "name": name},
                )
            elif kind == "ICEcandidate":
                await _to(data["user"], "ICEcandidate", {"rtcMessage": data["rtcMessage"]})
            elif kind == "hangup":
                peer = peers.pop(name, "")
                peers.pop(peer, None)
                await _to(name, "call_ended", {"name": peer, "reason": "hung_up"})
                await _status(name, "available")
                await _to(peer, "call_ended", {"name": name, "reason": "hung_up"})
                await _status(peer, "available")
    finally:
        if online.get(name) is send:
            del online[name]


_connected = {"type": "connection", "data": {"message": "Connected"}}


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        if path == "/ws/call/":
            await call_socket(receive, send)
            return
        if path.startswith(ROOM_PREFIX):
            room, user = path[len(ROOM_PREFIX) :].strip("/").split("/")
            await room_socket(room, user, receive, send)
            return
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})
