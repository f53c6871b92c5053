"""Pub/sub between sockets: a backend-neutral :class:`Broker` chosen by URL."""

from __future__ import annotations

from .base import Backend, BrokerUnavailable, Published
from .broker import Broker
from .frame import Frame
from .memory import MemoryBackend
from .redis import RedisBackend
from .subscriber import ConflatingSubscriber, Subscriber

__all__ = [
    "Backend",
    "Broker",
    "BrokerUnavailable",
    "ConflatingSubscriber",
    "Frame",
    "MemoryBackend",
    "Published",
    "RedisBackend",
    "Subscriber",
    "broker_from_url",
]


def broker_from_url(url: str, namespace: str = "quartchat") -> Broker:
    """``memory://`` -> in-process broker; ``redis://`` or ``rediss://`` (TLS) -> Redis, on
    channels named ``<namespace>:<topic>``."""
    if url.startswith("memory://"):
        return Broker(MemoryBackend())
    if url.startswith(("redis://", "rediss://")):
        return Broker(RedisBackend(url, prefix=f"{namespace}:"))
    raise ValueError(f"unsupported broker URL: {url} (expected memory://, redis:// or rediss://)")
