"""The Redis limiter: every admission is one atomic Lua script, so any number of API
processes and machines sharing one Redis admit exactly the configured number.

The script reads the server's clock (``TIME``), so the processes need no clock sync.
Per limit it keeps a bucket hash ``{prefix}:b:{subject}`` (tokens, ms) and budget
counters ``{prefix}:d:{subject}:{YYYY-MM-DD}`` / ``{prefix}:m:{subject}:{YYYY-MM}`` that
expire with their window. ``{prefix}:r:{request_id}`` remembers an admitted request
(``1``) and its settlement (``2``) so neither is counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from backend.quota.types import Admission, Headroom, Limit, LimitKind, Window, headroom_of

_KINDS = {1: LimitKind.RPM, 2: LimitKind.TOKENS_PER_DAY, 3: LimitKind.TOKENS_PER_MONTH}

# KEYS: [1] request marker, then per limit i: bucket, day counter, month counter.
# ARGV: estimate, n, marker ttl ms, then per limit: rpm, tpd, tpm, day ttl s, month ttl s.
_ADMIT = """
local est = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then return {1, 1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens = {}
local out = {1, 0}
for i = 0, n - 1 do
  local a = 4 + i * 5
  local rpm, tpd, tpm = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local rem_r, rem_d, rem_m = -1, -1, -1
  if rpm > 0 then
    local st = redis.call('HMGET', KEYS[2 + i * 3], 'tk', 'ts')
    local tk, ts = tonumber(st[1]), tonumber(st[2])
    if tk == nil then tk = rpm; ts = now end
    local rate = rpm / 60000.0
    tk = math.min(rpm, tk + math.max(0, now - ts) * rate)
    if tk < 1 then return {0, i, 1, math.ceil((1 - tk) / rate)} end
    tokens[i] = tk
    rem_r = math.floor(tk - 1)
  end
  if tpd > 0 then
    local used = tonumber(redis.call('GET', KEYS[3 + i * 3]) or '0')
    if used + est > tpd then return {0, i, 2, tonumber(ARGV[a + 3]) * 1000} end
    rem_d = tpd - used - est
  end
  if tpm > 0 then
    local used = tonumber(redis.call('GET', KEYS[4 + i * 3]) or '0')
    if used + est > tpm then return {0, i, 3, tonumber(ARGV[a + 4]) * 1000} end
    rem_m = tpm - used - est
  end
  table.insert(out, rem_r); table.insert(out, rem_d); table.insert(out, rem_m)
end
for i = 0, n - 1 do
  local a = 4 + i * 5
  if tokens[i] ~= nil then
    redis.call('HSET', KEYS[2 + i * 3], 'tk', tostring(tokens[i] - 1), 'ts', now)
    redis.call('PEXPIRE', KEYS[2 + i * 3], 120000)
  end
  if tonumber(ARGV[a + 1]) > 0 then
    redis.call('INCRBY', KEYS[3 + i * 3], est)
    redis.call('EXPIRE', KEYS[3 + i * 3], tonumber(ARGV[a + 3]) + 3600)
  end
  if tonumber(ARGV[a + 2]) > 0 then
    redis.call('INCRBY', KEYS[4 + i * 3], est)
    redis.call('EXPIRE', KEYS[4 + i * 3], tonumber(ARGV[a + 4]) + 3600)
  end
end
redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[3]))
return out
"""

# KEYS: [1] request marker, then per limit: day counter, month counter.
# ARGV: delta, n, then per limit: has day budget, has month budget (1/0).
_SETTLE = """
if redis.call('GET', KEYS[1]) ~= '1' then return 0 end
redis.call('SET', KEYS[1], '2', 'KEEPTTL')
local delta = tonumber(ARGV[1])
for i = 0, tonumber(ARGV[2]) - 1 do
  if ARGV[3 + i * 2] == '1' and redis.call('EXISTS', KEYS[2 + i * 2]) == 1 then
    redis.call('INCRBY', KEYS[2 + i * 2], delta)
  end
  if ARGV[4 + i * 2] == '1' and redis.call('EXISTS', KEYS[3 + i * 2]) == 1 then
    redis.call('INCRBY', KEYS[3 + i * 2], delta)
  end
end
return 1
"""

# KEYS: per limit: bucket, day counter, month counter. ARGV: n, then per limit: rpm.
_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local rpm = tonumber(ARGV[2 + i])
  local tk = -1
  if rpm > 0 then
    local st = redis.call('HMGET', KEYS[1 + i * 3], 'tk', 'ts')
    if st[1] then
      tk = math.min(rpm, tonumber(st[1]) + math.max(0, now - tonumber(st[2])) * rpm / 60000.0)
    else
      tk = rpm
    end
  end
  table.insert(out, math.floor(tk))
  table.insert(out, tonumber(redis.call('GET', KEYS[2 + i * 3]) or '0'))
  table.insert(out, tonumber(redis.call('GET', KEYS[3 + i * 3]) or '0'))
end
return out
"""


class RedisLimiter:
    def __init__(self, redis: Redis, prefix: str = "eg:quota", remember_s: float = 3600.0) -> None:
        self._redis = redis
        self._prefix = prefix
        self._remember_ms = int(remember_s * 1000)
        self._admit: Any = redis.register_script(_ADMIT)
        self._settle: Any = redis.register_script(_SETTLE)
        self._peek: Any = redis.register_script(_PEEK)

    def _keys(self, limit: Limit, window: Window) -> list[str]:
        p, s = self._prefix, limit.subject
        return [f"{p}:b:{s}", f"{p}:d:{s}:{window.day}", f"{p}:m:{s}:{window.month}"]

    async def admit(self, request_id: str, limits: Sequence[Limit], estimate: int, window: Window) -> Admission:
        keys, args = self.admit_call(request_id, limits, estimate, window)
        return self.admission_of(limits, window, await self._admit(keys=keys, args=args))

    def admit_call(
        self, request_id: str, limits: Sequence[Limit], estimate: int, window: Window
    ) -> tuple[list[str], list[int]]:
        """KEYS and ARGV of the admission script (to send it in a pipeline with others)."""
        keys = [f"{self._prefix}:r:{request_id}"]
        args: list[int] = [estimate, len(limits), self._remember_ms]
        for limit in limits:
            p = limit.policy
            keys += self._keys(limit, window)
            args += [p.rpm or 0, p.tokens_per_day or 0, p.tokens_per_month or 0]
            args += [window.day_reset_s, window.month_reset_s]
        return keys, args

    @property
    def admit_script(self) -> Any:
        """The registered admission script (callable with ``keys``, ``args``, ``client``)."""
        return self._admit

    def admission_of(self, limits: Sequence[Limit], window: Window, reply: Sequence[Any]) -> Admission:
        """The Admission that the admission script's ``reply`` describes."""
        raw = [int(v) for v in reply]
        if raw[0] == 0:
            limit = limits[raw[1]]
            return Admission(
                False,
                subject=limit.subject,
                kind=_KINDS[raw[2]],
                retry_after_s=raw[3] / 1000.0,
                on_limit=limit.policy.on_limit,
            )
        if raw[1] == 1:
            return Admission(True, replay=True)
        headroom: list[Headroom] = []
        for i, limit in enumerate(limits):
            p = limit.policy
            rem = raw[2 + i * 3 : 5 + i * 3]
            for kind, cap, left, reset in (
                (LimitKind.RPM, p.rpm, rem[0], 60.0),
                (LimitKind.TOKENS_PER_DAY, p.tokens_per_day, rem[1], float(window.day_reset_s)),
                (LimitKind.TOKENS_PER_MONTH, p.tokens_per_month, rem[2], float(window.month_reset_s)),
            ):
                if cap is not None:
                    headroom.append(Headroom(limit.subject, kind, cap, left, reset))
        return Admission(True, tuple(headroom))

    async def settle(
        self, request_id: str, limits: Sequence[Limit], estimate: int, actual: int, window: Window
    ) -> None:
        keys = [f"{self._prefix}:r:{request_id}"]
        args: list[int] = [actual - estimate, len(limits)]
        for limit in limits:
            keys += self._keys(limit, window)[1:]
            args += [int(limit.policy.tokens_per_day is not None), int(limit.policy.tokens_per_month is not None)]
        await self._settle(keys=keys, args=args)

    async def peek(self, limits: Sequence[Limit], window: Window) -> tuple[Headroom, ...]:
        keys: list[str] = []
        for limit in limits:
            keys += self._keys(limit, window)
        args = [len(limits), *[limit.policy.rpm or 0 for limit in limits]]
        raw = [int(v) for v in await self._peek(keys=keys, args=args)]
        out: list[Headroom] = []
        for i, limit in enumerate(limits):
            out += headroom_of(limit, window, *raw[i * 3 : i * 3 + 3])
        return tuple(out)
