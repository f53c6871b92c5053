"""Per-address socket and handshake limits, on a fake clock."""

from __future__ import annotations

import pytest

from quartchat.client_limits import ClientLimits, TooManyConnections, TooManyHandshakes

from .test_rules import Clock


def limits(clock: Clock, connections: int = 2, rate: float = 1.0, burst: int = 4) -> ClientLimits:
    return ClientLimits(connections, rate, burst, clock=clock)


def test_an_address_holds_at_most_its_connections() -> None:
    clock = Clock()
    counted = limits(clock)
    counted.admit("198.51.100.1")
    counted.admit("198.51.100.1")
    with pytest.raises(TooManyConnections) as refused:
        counted.admit("198.51.100.1")
    assert refused.value.limit == 2
    counted.admit("198.51.100.2")  # another address counts apart
    counted.release("198.51.100.1")
    counted.admit("198.51.100.1")


def test_an_ipv6_client_is_counted_by_its_64_network() -> None:
    counted = limits(Clock())
    counted.admit("2001:db8:1:2::1")
    counted.admit("2001:db8:1:2:ffff::9")  # another address of the same /64
    with pytest.raises(TooManyConnections):
        counted.admit("2001:db8:1:2:abcd::1")
    counted.admit("2001:db8:1:3::1")  # the next /64 counts apart
    counted.release("2001:db8:1:2::1")
    counted.admit("2001:db8:1:2::77")
    assert len(counted) == 2
    counted.admit("::ffff:198.51.100.1")  # an IPv4 client on a dual-stack socket: itself
    counted.admit("::ffff:198.51.100.2")
    counted.admit("::ffff:198.51.100.2")


def test_handshakes_beyond_the_burst_are_refused_until_a_token_is_back() -> None:
    clock = Clock()
    counted = limits(clock, connections=100, rate=0.5, burst=3)
    for _ in range(3):
        counted.admit("198.51.100.1")
    with pytest.raises(TooManyHandshakes) as refused:
        counted.admit("198.51.100.1")
    assert refused.value.retry_after_seconds == pytest.approx(2.0)
    clock.now += 1.5
    with pytest.raises(TooManyHandshakes) as again:  # a refused attempt takes no token
        counted.admit("198.51.100.1")
    assert again.value.retry_after_seconds == pytest.approx(0.5)
    clock.now += 0.5
    counted.admit("198.51.100.1")


def test_an_address_is_forgotten_once_closed_and_refilled() -> None:
    clock = Clock()
    counted = limits(clock, connections=2, rate=1.0, burst=4)
    counted.admit("198.51.100.1")
    clock.now += 10  # the bucket is full again while the socket is open
    counted.release("198.51.100.1")
    assert len(counted) == 0


def test_state_stays_bounded_under_many_addresses() -> None:
    clock = Clock()
    counted = limits(clock, rate=1.0, burst=4)  # refilled within 4 s
    for n in range(1000):
        address = f"2001:db8:{n:x}::1"  # each its own /64
        counted.admit(address)
        counted.release(address)  # closed at once; its bucket is still refilling
    counted.admit("198.51.100.1")  # held open
    assert len(counted) == 1001
    clock.now += 8  # two refill times: a sweep has run since every bucket was full
    counted.admit("198.51.100.2")
    assert len(counted) == 2  # the open one and the newcomer
    counted.admit("198.51.100.1")  # the open socket still counts: this is its second
    with pytest.raises(TooManyConnections):
        counted.admit("198.51.100.1")
