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

from quart import session, websocket

from ..origins import same_host

DEVICE_KEY = "device"


def ensure_device() -> None:
    """Give this browser a device id if it has none (called by the pages)."""
    if DEVICE_KEY not in session:
        session[DEVICE_KEY] = secrets.token_urlsafe(16)
        session.permanent = True


def websocket_device() -> str | None:
    """The device id of the current websocket, if it may be trusted."""
    origin = websocket.headers.get("Origin")
    if origin is None or not same_host(origin, websocket.headers.get("Host")):
        return None
    device = session.get(DEVICE_KEY)
    return device if isinstance(device, str) else None
