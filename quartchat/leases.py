"""Keeps this process's members and call names listed, and clears those of dead processes.

With a shared (Redis) presence and directory, what a process holds is on leases: renewed
here three times per lease, so a process that dies (a crash, a lost host) drops out within
one lease.  Any process's sweep then removes what ran out and tells the rooms and the call
directory, exactly as if those people had left.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from .aio import cancel_and_wait
from .broker import Broker, BrokerUnavailable
from .call.directory import Directory
from .call.frames import OnlineUser, UserStatus
from .call.frames import encode as encode_call
from .chat.presence import Presence
from .messages import MemberLeft, encode
from .topics import CALL_DIRECTORY_TOPIC, room_topic

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self, presence: Presence, directory: Directory, broker: Broker, lease_seconds: float
    ) -> None:
        self._presence = presence
        self._directory = directory
        self._broker = broker
        self._interval = lease_seconds / 3
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-keeper")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except BrokerUnavailable as error:
                log.warning("cannot renew leases: %s", error)
            await asyncio.sleep(self._interval)

    async def tick(self) -> None:
        """Renew what this process holds, then clear and announce what ran out."""
        await self._presence.renew()
        await self._directory.renew()
        for room, user in await self._presence.sweep():
            left = MemberLeft(user=user, datetime=datetime.now(UTC).isoformat())
            await self._broker.publish(room_topic(room), encode(left))
        for name in await self._directory.sweep():
            offline = UserStatus(data=OnlineUser(name=name, status="offline"))
            await self._broker.publish(CALL_DIRECTORY_TOPIC, encode_call(offline))
