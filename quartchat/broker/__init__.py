"""Pub/sub between sockets: a backend-neutral :class:`Broker` chosen by URL."""

from __future__ import annotations

from .base import Backend, BrokerUnavailable, Published
from .broker import Broker
from .memory import MemoryBackend
from .subscriber import SlowConsumer, Subscriber

__all__ = [
    "Backend",
    "Broker",
    "BrokerUnavailable",
    "MemoryBackend",
    "Published",
    "SlowConsumer",
    "Subscriber",
    "broker_from_url",
]


def broker_from_url(url: str) -> Broker:
    """``memory://`` -> in-process broker."""
    if url.startswith("memory://"):
        return Broker(MemoryBackend())
    raise ValueError(f"unsupported broker URL: {url}")
