"""The ICE servers a browser needs, with short-lived TURN credentials.

TURN REST credentials (draft-uberti-behave-turn-rest, what coturn checks with
``use-auth-secret`` / ``static-auth-secret``): the username is ``<expiry unix time>:<name>``
and the password is base64(HMAC-SHA1(secret, username)).  The secret never leaves the
server, and what a browser gets stops working at the expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from pydantic import BaseModel, Field

from ..config import IceConfig


class IceServer(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceServers(BaseModel):
    """Pass ``iceServers`` to ``new RTCPeerConnection({iceServers})``."""

    iceServers: list[IceServer] = Field(  # RTCConfiguration's field name
        description="Empty by default: host candidates work on a LAN and on localhost."
    )
    ttl: int = Field(description="Seconds the TURN credentials stay valid.")


def turn_credentials(secret: str, name: str, expires_at: int) -> tuple[str, str]:
    username = f"{expires_at}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(config: IceConfig, name: str, now: float | None = None) -> IceServers:
    servers = []
    if config.stun_urls:
        servers.append(IceServer(urls=config.stun_urls))
    if config.turn_urls:
        expires_at = int(time.time() if now is None else now) + config.turn_ttl_seconds
        username, credential = turn_credentials(config.turn_secret, name, expires_at)
        servers.append(IceServer(urls=config.turn_urls, username=username, credential=credential))
    return IceServers(iceServers=servers, ttl=config.turn_ttl_seconds)
