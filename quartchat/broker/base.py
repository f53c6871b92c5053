"""The backend interface: what a pub/sub engine must offer the :class:`~.Broker`.

Modelled on encode/broadcaster's backends: a handful of async methods, one listener per
process reading ``next_published`` and fanning out locally.  Messages are text, encoded once
by the publisher; a backend never looks inside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    text: str


class Backend(Protocol):
    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def subscribe(self, topic: str) -> None:
        """Start receiving ``topic``; return once the engine has confirmed it."""

    async def unsubscribe(self, topic: str) -> None: ...

    async def publish(self, topic: str, text: str) -> None: ...

    async def next_published(self) -> Published:
        """Wait for the next message on any subscribed topic."""

    async def ping(self) -> None:
        """Return if the engine is reachable, else raise."""
