"""A per-process cache of each caller's effective quota policies.

Admission reads the caller's limits (user, team, global) on every request; from SQL
that is one query per request. The cache keeps them for ``ttl_s`` per (email, team).

How stale can a policy be after a change (the bound docs/resilience.md states)?

- in the process that made the change (admin API): not at all, it clears its cache;
- in other processes, with Redis: at most ``check_s`` (1 s), because every change bumps
  a version key that each process reads at most once per ``check_s`` and a new version
  clears its cache;
- without Redis (the embedded default runs one process) or while Redis is unreachable:
  at most ``ttl_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from redis.asyncio import Redis

from backend.principal import Principal
from backend.quota.types import Limit

log = logging.getLogger(__name__)

VERSION_KEY = "eg:quota:policy-version"


class VersionSource(Protocol):
    """A counter shared by every process; each policy change bumps it."""

    async def current(self) -> int: ...

    async def bump(self) -> None: ...


class PolicyVersion:
    """The shared version of the quota policies: a Redis counter every change bumps."""

    def __init__(self, redis: Redis, key: str = VERSION_KEY) -> None:
        self._redis = redis
        self._key = key

    async def current(self) -> int:
        return int(await self._redis.get(self._key) or 0)

    async def bump(self) -> None:
        await self._redis.incr(self._key)


class PolicyCache:
    def __init__(
        self,
        ttl_s: float,
        version: VersionSource | None = None,
        *,
        check_s: float = 1.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``ttl_s`` 0 disables the cache (every call loads)."""
        self._ttl_s = ttl_s
        self._version = version
        self._check_s = check_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[tuple[str, str | None], tuple[float, tuple[Limit, ...]]] = {}
        self._seen_version: int | None = None
        self._checked_at = float("-inf")

    async def limits(self, principal: Principal, load: Callable[[], Awaitable[tuple[Limit, ...]]]) -> tuple[Limit, ...]:
        """The caller's limits from the cache, or from ``load`` (then cached)."""
        if self._ttl_s <= 0:
            return await load()
        now = self._clock()
        await self._follow_version(now)
        key = (principal.email.lower(), principal.team)
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        limits = await load()
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (now + self._ttl_s, limits)
        return limits

    def invalidate(self) -> None:
        """Forget every cached policy (this process changed one)."""
        self._entries.clear()

    async def changed(self) -> None:
        """A policy changed: forget this process's cache and tell the other processes.

        Never raises: without Redis the others catch up within ``ttl_s``."""
        self.invalidate()
        if self._version is None:
            return
        try:
            await self._version.bump()
        except Exception as exc:  # the store's errors vary; the TTL still bounds staleness
            log.error("could not announce a quota policy change (others see it within %ss): %s", self._ttl_s, exc)

    async def _follow_version(self, now: float) -> None:
        if self._version is None or now - self._checked_at < self._check_s:
            return
        self._checked_at = now
        try:
            current = await self._version.current()
        except Exception as exc:  # Redis down: fall back to the TTL alone
            log.warning("quota policy version unreadable, relying on the %ss TTL: %s", self._ttl_s, exc)
            return
        if current != self._seen_version:
            self._entries.clear()
            self._seen_version = current
