"""The room websocket, ``/ws/room/<room>/<user>/``, served beside Quart (see
:mod:`quartchat.asgi_socket` for why)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from quart import Quart

from ..asgi_socket import ASGISocket, Refusal, WebsocketRoute
from ..names import InvalidName, check_room, check_user
from ..services import Services
from ..sockets import PROTOCOL
from ..store import MAX_ID
from .socket import RoomSession

PATH_PREFIX = "/ws/room/"


def room_and_user(path: str) -> tuple[str, str] | None:
    """The names in a room socket's path, or None for another path."""
    if not path.startswith(PATH_PREFIX) or not path.endswith("/"):
        return None
    names = path[len(PATH_PREFIX) : -1].split("/")
    if len(names) != 2:
        return None
    return names[0], names[1]


RoomOpener = Callable[[ASGISocket, str, str], Awaitable[RoomSession | Refusal]]


def opener(services: Services) -> RoomOpener:
    async def open_room(socket: ASGISocket, room: str, user: str) -> RoomSession | Refusal:
        """Refused with 400 when a name or ``since`` is invalid."""
        try:
            check_room(room)
            check_user(user)
            since = parse_since(socket.query("since"))
        except (InvalidName, ValueError) as error:
            return Refusal(400, "bad_handshake", str(error))
        extended = PROTOCOL in socket.subprotocols
        return RoomSession(services, socket, room, user, extended, since)

    return open_room


def parse_since(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) > MAX_ID:
        raise ValueError(f"since must be a message id (an integer from 0 to {MAX_ID})")
    return int(value)


def init_app(app: Quart, services: Services) -> None:
    route = WebsocketRoute(app.asgi_app, room_and_user, opener(services))
    app.asgi_app = route  # type: ignore[method-assign]
