"""The call (signalling) websocket, ``/ws/call/``, served beside Quart (see
:mod:`quartchat.asgi_socket` for why)."""

from __future__ import annotations

from quart import Quart

from ..asgi_socket import ASGISocket, WebsocketRoute
from ..services import Services
from .identity import socket_device
from .session import CallSession

PATH = "/ws/call/"


def call_path(path: str) -> tuple[()] | None:
    return () if path == PATH else None


def init_app(app: Quart, services: Services) -> None:
    async def open_call(socket: ASGISocket) -> CallSession:
        return CallSession(services, socket, await socket_device(app, socket))

    app.asgi_app = WebsocketRoute(app.asgi_app, call_path, open_call)  # type: ignore[method-assign]
