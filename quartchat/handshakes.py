"""Checks on every websocket handshake (room and call sockets alike) before the app sees it:
the page's Origin, then the client address's connection and handshake limits.

A browser sends the visitor's cookies with a handshake whatever page opens it, so without
the Origin check any site could open sockets as its visitors.  A handshake *without* an
Origin is let in: browsers always send one, so it comes from a program (the workshop's
Python clients, bots, a load generator) that sends only the cookies it chooses to.
Refusing those would break scripts and protect no visitor.

The limits count the client address the scope holds by the time this runs: the
:class:`~quartchat.proxies.TrustedProxies` middleware wraps this one, so behind a trusted
proxy the forwarded client counts, not the proxy.  They are per process: with
``server.workers`` > 1 an address may hold up to that many times ``connections_per_ip``.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope, WebsocketScope
from quart import Quart

from .asgi_socket import Refusal, refuse
from .client_limits import ClientLimits, TooManyConnections, TooManyHandshakes
from .config import Settings
from .origins import origin_allowed
from .proxies import ASGIApp


class Handshakes:
    """ASGI middleware: refuse websocket handshakes from foreign pages or over the limits."""

    def __init__(
        self, app: ASGIApp, allowed_origins: Collection[str], limits: ClientLimits
    ) -> None:
        self.app = app
        self.allowed_origins = frozenset(allowed_origins)
        self.limits = limits

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        refusal = self._check_origin(scope)
        address = (scope.get("client") or ("",))[0]  # no address (not over TCP): one for all
        if refusal is None:
            refusal = self._admit(address)
        if refusal is not None:
            await refuse(scope, send, refusal)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limits.release(address)

    def _check_origin(self, scope: WebsocketScope) -> Refusal | None:
        origin = _header(scope, b"origin")
        secure = scope.get("scheme") == "wss"
        host = _header(scope, b"host")
        if origin is None or origin_allowed(origin, host, self.allowed_origins, secure):
            return None
        return Refusal(
            403,
            "origin_not_allowed",
            f"Pages at {origin} may not open websockets here: only this site's own pages "
            "and those at server.allowed_origins.",
        )

    def _admit(self, address: str) -> Refusal | None:
        try:
            self.limits.admit(address)
        except TooManyHandshakes as error:
            seconds = max(1, math.ceil(error.retry_after_seconds))
            return Refusal(
                429,
                "too_many_handshakes",
                f"Too many new websockets from your address; try again in {seconds} s.",
                [(b"retry-after", str(seconds).encode())],
            )
        except TooManyConnections as error:
            return Refusal(
                429,
                "too_many_connections",
                f"{error.limit} websockets are open from your address already; close one "
                "before opening another.",
            )
        return None


def init_app(app: Quart, settings: Settings) -> None:
    """Wrap the app's ASGI entry point.  Call it before :func:`quartchat.proxies.init_app`,
    whose middleware must run first to put the forwarded client in the scope."""
    limits = ClientLimits(
        settings.limits.connections_per_ip,
        settings.limits.handshakes_per_ip_per_second,
        settings.limits.handshake_burst,
    )
    wrapped = Handshakes(app.asgi_app, settings.server.allowed_origins, limits)
    app.asgi_app = wrapped  # type: ignore[method-assign]


def _header(scope: WebsocketScope, name: bytes) -> str | None:
    for header, value in scope["headers"]:
        if header.lower() == name:
            return value.decode("latin-1")
    return None
