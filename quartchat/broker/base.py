"""The backend interface: what a pub/sub engine must offer the :class:`~.Broker`.

Modelled on encode/broadcaster's backends: a handful of async methods, one listener per
process reading ``next_published`` and fanning out locally.  Messages are text, encoded once
by the publisher; a backend never looks inside them.

A backend is one connection that may be lost; it does not reconnect by itself.  Every method
that needs the engine raises :class:`BrokerUnavailable`, within a few seconds, when it cannot
be reached.  The :class:`~.Broker` owns the recovery: it calls :meth:`Backend.connect` again
with backoff and re-subscribes its topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class BrokerUnavailable(Exception):
    """The pub/sub engine cannot be reached: nothing was published or subscribed."""


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    text: str


class Backend(Protocol):
    async def connect(self) -> None:
        """Connect with no subscriptions (again, after a loss: the old ones are gone)."""

    async def disconnect(self) -> None: ...

    async def subscribe(self, topic: str) -> None:
        """Start receiving ``topic``; return once the engine has confirmed it."""

    async def unsubscribe(self, topic: str) -> None: ...

    async def publish(self, topic: str, text: str) -> None: ...

    async def next_published(self) -> Published:
        """Wait for the next message on any subscribed topic.

        Raises :class:`BrokerUnavailable` once the connection is lost, after handing out
        every message received before; the subscriptions are gone with it.
        """

    async def ping(self) -> None:
        """Return if the engine is reachable, else raise."""
