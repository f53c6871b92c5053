"""The room websocket, ``/ws/room/<room>/<user>/``: an ASGI endpoint beside the Quart app.

A room socket stays open as long as its member stays, and one process carries thousands of
them, so what each one holds while idle is what a server's capacity is made of.  Through
Quart every websocket also holds the framework's request context, a receive task and queue,
and a chain of suspended dispatch coroutines: an idle Quart websocket that does nothing
costs 1.6 times what the bare server costs for it (docs/performance.md).  So this one route
is served in front of the app, straight over ASGI (:class:`~quartchat.asgi_socket.ASGISocket`),
inside the same middleware as everything else (trusted proxies, the Origin check and the
per-address limits).  Pages, the HTTP API and the call socket, which uses the session, stay
with Quart.
"""

from __future__ import annotations

import logging
from typing import cast

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope, WebsocketScope
from quart import Quart

from ..asgi_socket import ASGISocket, Refusal
from ..broker import BrokerUnavailable
from ..names import InvalidName, check_room, check_user
from ..proxies import ASGIApp
from ..services import Services
from ..sockets import PROTOCOL
from ..store import MAX_ID
from .socket import RoomSession

log = logging.getLogger(__name__)

PATH_PREFIX = "/ws/room/"


class RoomEndpoint:
    """ASGI middleware: serves room sockets, passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        names = room_and_user(scope) if scope["type"] == "websocket" else None
        if names is None:
            await self.app(scope, receive, send)
            return
        # One frame for the whole life of the socket, from here to RoomSession.run: every
        # coroutine suspended along the way is memory an idle socket holds.
        socket = ASGISocket(cast(WebsocketScope, scope), receive, send)
        try:
            session, since = self.session(socket, *names)
        except (InvalidName, ValueError) as error:
            await socket.refuse(Refusal(400, "bad_handshake", str(error)))
            return
        try:
            await session.run(since)
        except BrokerUnavailable as error:
            if not socket.accepted:
                await socket.refuse(Refusal(503, "unavailable", f"Try again shortly: {error}"))
            else:  # leaving, in an outage (logged by the broker): the leases tell the others
                room, user = names
                log.info("%s left %s with the broker unavailable: %s", user, room, error)

    def session(self, socket: ASGISocket, room: str, user: str) -> tuple[RoomSession, int | None]:
        """The session a handshake asks for, and its ``since``; raises
        :class:`~quartchat.names.InvalidName` or :class:`ValueError` (answered with 400)."""
        check_room(room)
        check_user(user)
        since = parse_since(socket.query("since"))
        extended = PROTOCOL in socket.subprotocols
        return RoomSession(self.services, socket, room, user, extended), since


def room_and_user(scope: WebsocketScope) -> tuple[str, str] | None:
    """The names in a room socket's path (percent-decoded, as the server gives it), or None
    for another path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if not path.startswith(PATH_PREFIX) or not path.endswith("/"):
        return None
    names = path[len(PATH_PREFIX) : -1].split("/")
    if len(names) != 2:
        return None
    return names[0], names[1]


def parse_since(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) > MAX_ID:
        raise ValueError(f"since must be a message id (an integer from 0 to {MAX_ID})")
    return int(value)


def init_app(app: Quart, services: Services) -> None:
    app.asgi_app = RoomEndpoint(app.asgi_app, services)  # type: ignore[method-assign]
