"""The broker's connection state and its reconnect backoff, without any backend."""

from __future__ import annotations

import asyncio
import itertools

from quartchat.broker.broker import backoff_delays
from quartchat.broker.state import ConnectionState


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = list(itertools.islice(backoff_delays(0.1, 5.0), 9))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


async def test_wait_returns_at_once_when_the_state_already_differs() -> None:
    state = ConnectionState()
    state.set(True)
    async with asyncio.timeout(1):
        assert await state.wait_change(seen=False) is True


async def test_every_waiter_wakes_on_a_change() -> None:
    state = ConnectionState()
    state.set(True)
    async with asyncio.timeout(1):
        waiters = [asyncio.create_task(state.wait_change(seen=True)) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(waiter.done() for waiter in waiters)
        state.set(False)
        assert await asyncio.gather(*waiters) == [False, False, False]


async def test_a_flap_wakes_the_waiter_with_the_state_it_saw() -> None:
    state = ConnectionState()
    state.set(True)
    async with asyncio.timeout(1):
        waiter = asyncio.create_task(state.wait_change(seen=True))
        await asyncio.sleep(0)
        state.set(False)
        state.set(True)  # before the waiter ran
        assert await waiter is True  # woken all the same: an outage happened
