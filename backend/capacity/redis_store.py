"""The Redis capacity store: several API processes and machines share each expert's
slots exactly.

Each held slot is a member of a sorted set scored by its lease deadline (Redis server
clock, ms): ``{prefix}:{expert}`` for the expert's total and ``{prefix}:{expert}:{i}``
for replica ``i``. One Lua script per acquisition drops expired leases, walks the
candidate experts in order and takes the first slot with room, so a process that dies
mid-request leaks its slot for at most the lease, and no two callers can take the last
slot. Every key of a script must live on one Redis node (no Redis Cluster sharding).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from backend.capacity.types import Pool, Slot

# KEYS: per pool: the expert's key, then one key per replica.
# ARGV: member, lease ms, pool count, then per pool: capacity, replica count, replica caps.
# Returns {pool index (0-based, -1: all full), replica (1-based, 0: no replicas)}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member, lease = ARGV[1], tonumber(ARGV[2])
local k, a = 1, 4
for p = 1, tonumber(ARGV[3]) do
  local cap, nr = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now)
  local room = redis.call('ZCARD', KEYS[k]) < cap
  local best, best_load = 0, nil
  if room and nr > 0 then
    for r = 1, nr do
      redis.call('ZREMRANGEBYSCORE', KEYS[k + r], '-inf', now)
      local load = redis.call('ZCARD', KEYS[k + r])
      if load < tonumber(ARGV[a + 1 + r]) and (best_load == nil or load < best_load) then
        best, best_load = r, load
      end
    end
    room = best > 0
  end
  if room then
    redis.call('ZADD', KEYS[k], now + lease, member)
    redis.call('PEXPIRE', KEYS[k], lease)
    if best > 0 then
      redis.call('ZADD', KEYS[k + best], now + lease, member)
      redis.call('PEXPIRE', KEYS[k + best], lease)
    end
    return {p - 1, best}
  end
  k, a = k + 1 + nr, a + 2 + nr
end
return {-1, 0}
"""

# KEYS: expert keys. Returns the live count of each.
_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf')
end
return out
"""


class RedisCapacity:
    def __init__(self, redis: Redis, lease_s: float = 300.0, prefix: str = "eg:cap") -> None:
        self._redis = redis
        self._lease_ms = max(1, int(lease_s * 1000))
        self._prefix = prefix
        self._acquire: Any = redis.register_script(_ACQUIRE)
        self._count: Any = redis.register_script(_COUNT)

    def _key(self, expert: str, replica: int | None = None) -> str:
        base = f"{self._prefix}:{expert}"
        return base if replica is None else f"{base}:{replica}"

    def acquire_call(self, pools: Sequence[Pool], lease: str) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV of the acquisition script (the member is made unique here)."""
        keys: list[str] = []
        args: list[str | int] = [f"{lease}:{uuid.uuid4().hex[:8]}", self._lease_ms, len(pools)]
        for pool in pools:
            keys.append(self._key(pool.expert))
            keys += [self._key(pool.expert, i) for i in range(len(pool.replicas))]
            args += [pool.capacity, len(pool.replicas), *pool.replicas]
        return keys, args

    @property
    def acquire_script(self) -> Any:
        """The registered acquisition script (callable with ``keys``, ``args``, ``client``)."""
        return self._acquire

    @staticmethod
    def slot_of(pools: Sequence[Pool], member: str, raw: Sequence[Any]) -> Slot | None:
        """The Slot that the script's reply ``raw`` describes (None: every pool full)."""
        index, replica = int(raw[0]), int(raw[1])
        if index < 0:
            return None
        return Slot(pools[index].expert, member, replica - 1 if replica else None)

    async def acquire(self, pools: Sequence[Pool], lease: str) -> Slot | None:
        keys, args = self.acquire_call(pools, lease)
        raw = await self._acquire(keys=keys, args=args)
        return self.slot_of(pools, str(args[0]), raw)

    async def release(self, slot: Slot) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(self._key(slot.expert), slot.lease)
        if slot.replica is not None:
            pipe.zrem(self._key(slot.expert, slot.replica), slot.lease)
        await pipe.execute()

    async def in_flight(self, experts: Sequence[str]) -> dict[str, int]:
        names = list(experts)
        raw = await self._count(keys=[self._key(n) for n in names], args=[])
        return {name: int(n) for name, n in zip(names, raw, strict=True) if int(n)}
