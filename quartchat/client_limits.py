"""Per-address limits on websockets: how many one client address may hold open, and how
fast it may open new ones.  Pure bookkeeping, applied by :mod:`quartchat.handshakes`.

An IPv6 client is counted by its /64 network: that is what one subscriber or host is
given, and it holds more addresses than any limit could count one by one.

An address is remembered while it has sockets open or its handshake bucket is refilling.
Once neither holds it is forgotten: at once if its last socket closes on a full bucket,
else by a sweep that runs at most once per refill time (``burst / rate``), so an address
that opened a socket and left is gone within two refill times, and a flood from many
addresses costs memory for that long only.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from .chat.rules import TokenBucket


class TooManyConnections(Exception):
    """The address holds ``limit`` open sockets already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} websockets are open from this address already")
        self.limit = limit


class TooManyHandshakes(Exception):
    """The address opened sockets faster than allowed; the next may come in
    ``retry_after_seconds``."""

    def __init__(self, retry_after_seconds: float) -> None:
        super().__init__(f"too many websocket handshakes; retry in {retry_after_seconds:.1f} s")
        self.retry_after_seconds = retry_after_seconds


def client_of(address: str) -> str:
    """What the limits count ``address`` as: itself, or for IPv6 its /64 network."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an IP address (a unix socket's peer, say): itself
    if parsed.version == 6 and parsed.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return address


@dataclass
class _Address:
    handshakes: TokenBucket
    open: int = 0


class ClientLimits:
    """The open sockets and handshake buckets of every client address.

    Arguments:
        connections: most sockets open at once per address.
        handshakes_per_second: new sockets per address and second, on average...
        handshake_burst: ...with bursts up to this many.
    """

    def __init__(
        self,
        connections: int,
        handshakes_per_second: float,
        handshake_burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connections = connections
        self._rate = handshakes_per_second
        self._burst = handshake_burst
        self._clock = clock
        self._refill_seconds = handshake_burst / handshakes_per_second
        self._next_sweep = clock() + self._refill_seconds
        self._addresses: dict[str, _Address] = {}

    def admit(self, address: str) -> None:
        """Count a new socket from ``address``, or raise :class:`TooManyHandshakes` or
        :class:`TooManyConnections`.  An attempt takes a handshake token whenever one is left,
        even if the connection cap then refuses it.  An admitted socket must be given back
        with :meth:`release`."""
        self._sweep()
        address = client_of(address)
        entry = self._addresses.get(address)
        if entry is None:
            bucket = TokenBucket(self._rate, self._burst, clock=self._clock)
            entry = self._addresses[address] = _Address(bucket)
        if not entry.handshakes.take():
            raise TooManyHandshakes(entry.handshakes.seconds_until_token())
        if entry.open >= self._connections:
            raise TooManyConnections(self._connections)
        entry.open += 1

    def release(self, address: str) -> None:
        """A socket :meth:`admit` counted has closed."""
        address = client_of(address)
        entry = self._addresses[address]
        entry.open -= 1
        if not entry.open and entry.handshakes.full():
            del self._addresses[address]

    def __len__(self) -> int:
        """How many addresses are remembered."""
        return len(self._addresses)

    def _sweep(self) -> None:
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._refill_seconds
        idle = [
            address
            for address, entry in self._addresses.items()
            if not entry.open and entry.handshakes.full()
        ]
        for address in idle:
            del self._addresses[address]
