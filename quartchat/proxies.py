"""Who the client is behind a reverse proxy: ``X-Forwarded-For`` and ``X-Forwarded-Proto``,
believed only from the proxies in ``[server] trusted_proxies``.

Anyone can send those headers, so they count only when the TCP peer is a trusted proxy.
``X-Forwarded-For`` lists every hop (each proxy appends the address it was connected from),
and only the entries added by trusted proxies are true: the client is the right-most entry
that is not a trusted proxy; whatever a client wrote further left is never reached.
``X-Forwarded-Proto`` is the scheme the client used with the nearest proxy, which sets it.
The ``Host`` header needs nothing: the shipped nginx config passes the client's on.

Hypercorn's ``ProxyFixMiddleware`` does not fit: it trusts every peer, takes a fixed number
of hops for ``X-Forwarded-For`` and reads ``X-Forwarded-Proto`` at that same depth (which
proxies that set the header instead of appending to it never fill), and it edits a copy of
the scope, so Hypercorn's access log keeps the proxy's address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]
Network = IPv4Network | IPv6Network

# The scheme a client used with the proxy -> the scope's scheme, per connection type.
SCHEMES = {
    "http": {"http": "http", "https": "https"},
    "websocket": {"http": "ws", "https": "wss"},
}


class TrustedProxies:
    """ASGI middleware: for a request whose peer is a trusted proxy, put the forwarded client
    address and scheme in the scope.

    The scope is edited in place, although the ASGI spec advises a copy so that changes do
    not leak to the server: here that leak is the point, since Hypercorn's access log
    reads the client address from the very scope it passed in.
    """

    def __init__(self, app: ASGIApp, trusted: Iterable[str]) -> None:
        self.app = app
        self.networks = tuple(ip_network(entry) for entry in trusted)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http" or scope["type"] == "websocket":
            peer = scope.get("client")
            if peer is not None and is_trusted(peer[0], self.networks):
                headers = scope["headers"]
                scope["client"] = (forwarded_client(peer[0], headers, self.networks), 0)
                proto = _last_value(headers, b"x-forwarded-proto")
                scheme = SCHEMES[scope["type"]].get(proto.lower()) if proto else None
                if scheme is not None:
                    scope["scheme"] = scheme
        await self.app(scope, receive, send)


def init_app(app: Quart, trusted: Sequence[str]) -> None:
    """Wrap the app's ASGI entry point, so that it works under any ASGI server (the
    ``quartchat`` command and plain ``hypercorn "quartchat:create_app()"`` alike)."""
    if trusted:
        app.asgi_app = TrustedProxies(app.asgi_app, trusted)  # type: ignore[method-assign]


def forwarded_client(
    peer: str, headers: Iterable[tuple[bytes, bytes]], networks: Sequence[Network]
) -> str:
    """The client's address: walking ``X-Forwarded-For`` from the right, the first entry
    that is not a trusted proxy.  If every entry is trusted, the left-most; if the walk meets
    something that is not an IP address, the last trusted hop before it (only a trusted
    proxy's word counts, and that proxy did not give an address)."""
    client = peer
    for entry in reversed(_values(headers, b"x-forwarded-for")):
        address = _parse(entry)
        if address is None:
            break
        client = entry
        if not _in_networks(address, networks):
            break
    return client


def is_trusted(address: str, networks: Sequence[Network]) -> bool:
    parsed = _parse(address)
    return parsed is not None and _in_networks(parsed, networks)


def _in_networks(address: IPv4Address | IPv6Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    """An address, with IPv4-mapped IPv6 ones (a dual-stack listener's) made IPv4."""
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """Every comma-separated value of header ``name``, over all its lines, in order."""
    return [
        value.strip()
        for header, line in headers
        if header.lower() == name
        for value in line.decode("latin-1").split(",")
        if value.strip()
    ]


def _last_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = _values(headers, name)
    return values[-1] if values else None
