"""Which web pages may open websockets here: a handshake's ``Origin`` against its ``Host``.

A browser sends the visitor's cookies with every websocket handshake, whichever site's page
opens it, and names that page's origin in ``Origin``.  Our own pages are on the host the
browser connected to, so their Origin's ``host[:port]`` equals the ``Host`` header.  The
scheme is left out of that comparison: behind a TLS-terminating proxy (or with ``ws://``
from an ``http://`` page) the scheme the app sees need not be the page's.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def same_host(origin: str, host: str | None) -> bool:
    """True when the page at ``origin`` is on ``host`` (the ``Host`` header), any scheme."""
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


def origin_allowed(origin: str, host: str | None, allowed: Collection[str]) -> bool:
    """True for a page on this host, or at one of ``allowed`` (as :func:`normalize_origin`
    gives them)."""
    return same_host(origin, host) or origin.lower() in allowed


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
