"""Which web pages may open websockets here: a handshake's ``Origin`` against its ``Host``.

A browser sends the visitor's cookies with every websocket handshake, whichever site's page
opens it, and names that page's origin in ``Origin``.  Our own pages are on the host the
browser connected to, so their Origin's ``host[:port]`` equals the ``Host`` header.  The
scheme is left out of that comparison while the connection is plain: behind a
TLS-terminating proxy that is not among ``server.trusted_proxies`` the app sees ``ws://``
for a page's ``wss://``.  Once the connection is known to be secure (TLS to us, or a trusted
proxy's ``X-Forwarded-Proto: https``), only an ``https://`` page is ours: a plain-HTTP page
on the same host is what an attacker on the network could forge.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def same_host(origin: str, host: str | None, secure: bool = False) -> bool:
    """True when the page at ``origin`` is on ``host`` (the ``Host`` header): any scheme,
    or only https when the connection is ``secure``."""
    parts = urlsplit(origin.lower())
    if secure and parts.scheme != "https":
        return False
    return host is not None and parts.netloc == host.lower()


def origin_allowed(
    origin: str, host: str | None, allowed: Collection[str], secure: bool = False
) -> bool:
    """True for a page on this host, or at one of ``allowed`` (as :func:`normalize_origin`
    gives them)."""
    return same_host(origin, host, secure) or origin.lower() in allowed


def normalize_origin(text: str) -> str:
    """``text`` as browsers write an Origin (``scheme://host[:port]``, lower case, no default
    port), or ValueError if it is not one."""
    parts = urlsplit(text.strip().lower())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in DEFAULT_PORTS
        or not parts.hostname
        or port == -1
        or "@" in parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"{text!r} is not an origin: give scheme://host[:port], e.g. https://chat.example.org"
        )
    netloc = parts.netloc
    if port == DEFAULT_PORTS[parts.scheme]:
        netloc = netloc.removesuffix(f":{port}")
    return f"{parts.scheme}://{netloc}"
