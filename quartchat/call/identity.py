"""Which browser a call connection comes from: a random id in the signed session cookie.

Pages give every browser a ``device`` id.  A call connection presenting the same id as the
connection holding a name may take the name over (a reload, a second tab); any other is
refused with ``name_taken``.  The id is only trusted from our own pages: a websocket opened
by another site carries the cookie too, so its Origin must match the Host (even for an
origin in ``server.allowed_origins``, which may open sockets but is not us; and a client
without an Origin, which :mod:`quartchat.handshakes` lets in, gets no device either).
"""

from __future__ import annotations

import secrets
from typing import Any

from quart import Quart, session
from werkzeug.http import parse_cookie

from ..asgi_socket import ASGISocket
from ..origins import same_host

DEVICE_KEY = "device"


def ensure_device() -> None:
    """Give this browser a device id if it has none (called by the pages)."""
    if DEVICE_KEY not in session:
        session[DEVICE_KEY] = secrets.token_urlsafe(16)
        session.permanent = True


async def socket_device(app: Quart, socket: ASGISocket) -> str | None:
    """The device id of a websocket, if it may be trusted: read from the session cookie by
    the app's own session interface (so signed, checked and aged as the pages set it)."""
    origin = socket.header(b"origin")
    secure = socket.scope.get("scheme") == "wss"
    if origin is None or not same_host(origin, socket.header(b"host"), secure):
        return None
    cookies = "; ".join(
        value.decode("latin-1")
        for name, value in socket.scope["headers"]
        if name.lower() == b"cookie"
    )
    request: Any = _Cookies(parse_cookie(cookies))
    found = await app.session_interface.open_session(app, request)
    device = found.get(DEVICE_KEY) if found is not None else None
    return device if isinstance(device, str) else None


class _Cookies:
    """What the session interface reads of a request: its cookies."""

    def __init__(self, cookies: Any) -> None:
        self.cookies = cookies
