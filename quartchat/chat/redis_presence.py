"""Room presence shared by every process through Redis, held on leases.

Each process records its own members in one hash per room, a field per (user, process)
holding the lease's expiry; a set of rooms, scored by expiry, lists the rooms to look in.
Live processes renew their fields (:meth:`RedisPresence.renew`); the fields of a process that
died run out within ``lease_seconds`` and the next sweep by any process removes them and
reports who left with them.  The scripts read the time from Redis, so hosts' clocks do not
have to agree.  (Keys are computed inside the scripts: one Redis, not a cluster.)
"""

from __future__ import annotations

from functools import partial
from typing import Any

from redis.asyncio import Redis

from ..broker.redis import LUA_NOW, run_script
from .presence import LocalPresence

SEPARATOR = "\x1f"  # between user and process in a field; not allowed in names


# Live fields of a user other than `except`: KEYS[1] hash; returns the count.
_OTHERS = """
local function others(hash, user, except, now)
  local prefix = user .. '\\31'
  local all = redis.call('HGETALL', hash)
  local count = 0
  for i = 1, #all, 2 do
    if all[i] ~= except and string.sub(all[i], 1, #prefix) == prefix
        and tonumber(all[i + 1]) > now then
      count = count + 1
    end
  end
  return count
end
"""

JOIN = (
    LUA_NOW
    + _OTHERS
    + """
local expires = now + tonumber(ARGV[3])
local first = others(KEYS[1], ARGV[2], ARGV[1], now) == 0
redis.call('HSET', KEYS[1], ARGV[1], expires)
redis.call('ZADD', KEYS[2], 'GT', expires, ARGV[4])
if first then return 1 end
return 0
"""
)

LEAVE = (
    LUA_NOW
    + _OTHERS
    + """
redis.call('HDEL', KEYS[1], ARGV[1])
if others(KEYS[1], ARGV[2], ARGV[1], now) == 0 then return 1 end
return 0
"""
)

MEMBERS = (
    LUA_NOW
    + """
local users = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) > now then
    table.insert(users, string.match(all[i], '^(.*)\\31'))
  end
end
return users
"""
)

ROOMS = (
    LUA_NOW
    + """
local result = {}
for _, room in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  local seen, count = {}, 0
  local all = redis.call('HGETALL', ARGV[1] .. room)
  for i = 1, #all, 2 do
    local user = string.match(all[i], '^(.*)\\31')
    if tonumber(all[i + 1]) > now and not seen[user] then
      seen[user] = true
      count = count + 1
    end
  end
  if count > 0 then
    table.insert(result, room)
    table.insert(result, count)
  end
end
return result
"""
)

RENEW = (
    LUA_NOW
    + """
local expires = now + tonumber(ARGV[1])
for i = 3, #ARGV, 2 do
  redis.call('HSET', ARGV[2] .. ARGV[i], ARGV[i + 1], expires)
  redis.call('ZADD', KEYS[1], 'GT', expires, ARGV[i])
end
return 0
"""
)

SWEEP = (
    LUA_NOW
    + _OTHERS
    + """
local left = {}
for _, room in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local hash = ARGV[1] .. room
  local all = redis.call('HGETALL', hash)
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) <= now then
      redis.call('HDEL', hash, all[i])
      local user = string.match(all[i], '^(.*)\\31')
      if others(hash, user, all[i], now) == 0 then
        table.insert(left, room)
        table.insert(left, user)
      end
    end
  end
  if redis.call('HLEN', hash) == 0 then
    redis.call('ZREM', KEYS[1], room)
  end
end
return left
"""
)


class RedisPresence:
    def __init__(self, redis: Redis, namespace: str, process: str, lease_seconds: float) -> None:
        self._redis = redis
        self._process = process
        self._lease_ms = int(lease_seconds * 1000)
        self._hash_prefix = f"{namespace}:presence:"
        self._rooms_key = f"{namespace}:rooms"
        self._local = LocalPresence()  # this process's sockets, per (room, user)
        self._join = redis.register_script(JOIN)
        self._leave = redis.register_script(LEAVE)
        self._members = redis.register_script(MEMBERS)
        self._rooms = redis.register_script(ROOMS)
        self._renew = redis.register_script(RENEW)
        self._sweep = redis.register_script(SWEEP)
        self._run = partial(run_script, doing="room presence")

    def _field(self, user: str) -> str:
        return f"{user}{SEPARATOR}{self._process}"

    async def join(self, room: str, user: str) -> bool:
        if not await self._local.join(room, user):
            return False  # another socket of this process already holds the lease
        keys = [self._hash_prefix + room, self._rooms_key]
        first = await self._run(self._join, keys, [self._field(user), user, self._lease_ms, room])
        return bool(first)

    async def leave(self, room: str, user: str) -> bool:
        if not await self._local.leave(room, user):
            return False
        last = await self._run(self._leave, [self._hash_prefix + room], [self._field(user), user])
        return bool(last)

    async def members(self, room: str) -> list[str]:
        users: list[Any] = await self._run(self._members, [self._hash_prefix + room])
        return sorted({user for user in users}, key=str.casefold)

    async def rooms(self) -> list[tuple[str, int]]:
        flat: list[Any] = await self._run(self._rooms, [self._rooms_key], [self._hash_prefix])
        counts = [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]
        return sorted(counts, key=lambda item: (-item[1], item[0]))

    async def renew(self) -> None:
        pairs = [part for room, user in self._local.local() for part in (room, self._field(user))]
        if pairs:
            await self._run(
                self._renew, [self._rooms_key], [self._lease_ms, self._hash_prefix, *pairs]
            )

    async def sweep(self) -> list[tuple[str, str]]:
        flat: list[Any] = await self._run(self._sweep, [self._rooms_key], [self._hash_prefix])
        return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
