"""The call directory shared by every process through Redis, held on leases.

One hash maps each logged-in name to its holder: connection id, browser (device), status and
the lease's expiry.  Claims, releases and status changes compare the holder inside a script,
so two processes can never both hold a name.  Live processes renew the names of their
connections (:meth:`RedisDirectory.renew`); the names of a process that died run out within
``lease_seconds`` and the next sweep frees them (and reports them, to announce them offline).
Times come from Redis, so hosts' clocks do not have to agree.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, cast

from redis.asyncio import Redis

from ..broker.redis import LUA_NOW, run_script
from .directory import Claim, Entry, Status

_NOW_AND_LIVE = (
    LUA_NOW
    + """
local function live(name)
  local value = redis.call('HGET', KEYS[1], name)
  if not value then return nil end
  local entry = cjson.decode(value)
  if entry.expires <= now then return nil end
  return entry
end
"""
)

# ARGV: name, sid, device ('' for none), lease ms
#   -> {1, replaced sid or ''}, or {0, 1 if the holder is in a call else 0}
CLAIM = (
    _NOW_AND_LIVE
    + """
local held = live(ARGV[1])
if held and (ARGV[3] == '' or held.device ~= ARGV[3] or held.status == 'busy') then
  if held.status == 'busy' then return {0, 1} end
  return {0, 0}
end
local entry = {sid = ARGV[2], device = ARGV[3], status = 'available',
               expires = now + tonumber(ARGV[4])}
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
if held then return {1, held.sid} end
return {1, ''}
"""
)

# ARGV: name, sid -> 1 if released
RELEASE = (
    _NOW_AND_LIVE
    + """
local held = live(ARGV[1])
if not held or held.sid ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""
)

# ARGV: name, sid, status -> 1 if changed
SET_STATUS = (
    _NOW_AND_LIVE
    + """
local held = live(ARGV[1])
if not held or held.sid ~= ARGV[2] or held.status == ARGV[3] then return 0 end
held.status = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(held))
return 1
"""
)

# ARGV: name -> the entry as JSON, or nil
LOOKUP = (
    _NOW_AND_LIVE
    + """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value and cjson.decode(value).expires > now then return value end
return false
"""
)

# -> {name, json, name, json, ...} of live entries
ONLINE = (
    _NOW_AND_LIVE
    + """
local result = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if cjson.decode(all[i + 1]).expires > now then
    table.insert(result, all[i])
    table.insert(result, all[i + 1])
  end
end
return result
"""
)

# ARGV: lease ms, then name, sid pairs
RENEW = (
    _NOW_AND_LIVE
    + """
for i = 2, #ARGV, 2 do
  local held = live(ARGV[i])
  if held and held.sid == ARGV[i + 1] then
    held.expires = now + tonumber(ARGV[1])
    redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(held))
  end
end
return 0
"""
)

SWEEP = (
    _NOW_AND_LIVE
    + """
local freed = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if cjson.decode(all[i + 1]).expires <= now then
    redis.call('HDEL', KEYS[1], all[i])
    table.insert(freed, all[i])
  end
end
return freed
"""
)


class RedisDirectory:
    def __init__(self, redis: Redis, namespace: str, lease_seconds: float) -> None:
        self._key = [f"{namespace}:calls"]
        self._lease_ms = int(lease_seconds * 1000)
        self._held: dict[str, str] = {}  # name -> sid, for the connections of this process
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)
        self._set_status = redis.register_script(SET_STATUS)
        self._lookup = redis.register_script(LOOKUP)
        self._online = redis.register_script(ONLINE)
        self._renew = redis.register_script(RENEW)
        self._sweep = redis.register_script(SWEEP)
        self._run = partial(run_script, doing="call directory")

    async def claim(self, name: str, sid: str, device: str | None) -> Claim:
        result: list[Any] = await self._run(
            self._claim, self._key, [name, sid, device or "", self._lease_ms]
        )
        if not result[0]:
            return Claim(granted=False, holder_busy=bool(result[1]))
        self._held[name] = sid
        replaced = result[1]
        return Claim(granted=True, replaced_sid=replaced or None)

    async def release(self, name: str, sid: str) -> bool:
        if self._held.get(name) == sid:
            del self._held[name]
        return bool(await self._run(self._release, self._key, [name, sid]))

    async def lookup(self, name: str) -> Entry | None:
        found: str | None = await self._run(self._lookup, self._key, [name])
        return None if found is None else _entry(found)

    async def set_status(self, name: str, sid: str, status: Status) -> bool:
        return bool(await self._run(self._set_status, self._key, [name, sid, status]))

    async def online(self) -> list[tuple[str, Status]]:
        entries = await self._entries()
        return sorted(
            ((name, entry.status) for name, entry in entries), key=lambda item: item[0].casefold()
        )

    async def renew(self) -> None:
        pairs = [part for name, sid in self._held.items() for part in (name, sid)]
        if pairs:
            await self._run(self._renew, self._key, [self._lease_ms, *pairs])

    async def sweep(self) -> list[str]:
        freed: list[Any] = await self._run(self._sweep, self._key)
        return [name for name in freed]

    async def _entries(self) -> list[tuple[str, Entry]]:
        flat: list[Any] = await self._run(self._online, self._key)
        return [(flat[i], _entry(flat[i + 1])) for i in range(0, len(flat), 2)]


def _entry(value: str) -> Entry:
    data = json.loads(value)
    return Entry(data["sid"], data["device"] or None, cast(Status, data["status"]))
