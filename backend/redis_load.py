"""In-flight counts shared through Redis, for several API processes and machines.

Each in-flight request is a member of a per-expert sorted set scored by its lease
expiry, so a process that dies mid-request cannot leak capacity for longer than the
lease: expired members are not counted and are swept on every snapshot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from redis.asyncio import Redis


class RedisLoadTracker:
    def __init__(
        self,
        redis: Redis,
        experts: Sequence[str],
        lease_s: float = 300.0,
        prefix: str = "eg:inflight",
    ) -> None:
        self._redis = redis
        self._experts = tuple(experts)
        self._lease_s = lease_s
        self._prefix = prefix

    def _key(self, expert: str) -> str:
        return f"{self._prefix}:{expert}"

    async def snapshot(self) -> dict[str, int]:
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        for name in self._experts:
            pipe.zremrangebyscore(self._key(name), "-inf", now)
            pipe.zcard(self._key(name))
        results = await pipe.execute()
        counts = results[1::2]
        return {name: int(n) for name, n in zip(self._experts, counts, strict=True) if n}

    @asynccontextmanager
    async def hold(self, expert: str) -> AsyncIterator[None]:
        member = uuid.uuid4().hex
        key = self._key(expert)
        await self._redis.zadd(key, {member: time.time() + self._lease_s})
        try:
            yield
        finally:
            await self._redis.zrem(key, member)
