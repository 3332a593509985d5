"""Failed-login flood protection: too many failed authentications from one client IP
within a minute get 429 with Retry-After, before any credential is even looked at.

What counts as a failure: a presented API key that does not authenticate, and an SSO
callback that is refused. A missing credential is not a failure (the web UI asks
``/api/v1/me`` before anyone signs in). While a client is throttled, every attempt is
refused, a valid key included: answering "valid" for the right key would keep the
guessing game open.

The budget is a token bucket per client (backend.quota.bucket): ``per_minute``
failures in a burst, refilling at ``per_minute`` per minute. In-process by default
(bounded: the least recently seen clients are forgotten first); with Redis, the quota
package's atomic Lua limiter under its own key prefix, shared by every replica, and
fail-open when Redis errs (throttling is a defence, not a gate to the service).
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from redis.asyncio import Redis

from backend.errors import AppError
from backend.quota.bucket import Bucket, refill, retry_after, take
from backend.quota.failsafe import FailSafeLimiter
from backend.quota.limiter import QuotaLimiter
from backend.quota.redis_limiter import RedisLimiter
from backend.quota.types import Limit, QuotaPolicy, Window


class TooManyFailedLogins(AppError):
    """429: this client failed to authenticate too often; ``retry_after_s`` says when to retry."""

    status, code, type = 429, "too_many_failed_logins", "rate_limit_error"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many failed sign-in attempts from this address; retry in {math.ceil(retry_after_s)} s")
        self.retry_after_s = retry_after_s


class LoginThrottle(Protocol):
    async def check(self, client: str | None) -> None:
        """Raise TooManyFailedLogins if ``client`` has no failures left to spend."""
        ...

    async def failed(self, client: str | None) -> None:
        """Count one failed authentication against ``client``."""
        ...


def _subject(client: str | None) -> str:
    return f"authfail:{client or 'unknown'}"


class MemoryLoginThrottle:
    """One process; at most ``max_clients`` buckets (the least recently failed go first)."""

    def __init__(
        self, per_minute: int, *, max_clients: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rpm = per_minute
        self._max = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    async def check(self, client: str | None) -> None:
        stored = self._buckets.get(_subject(client))
        if stored is None:
            return
        bucket = refill(stored, self._rpm, self._clock())
        if bucket.tokens < 1.0:
            raise TooManyFailedLogins(retry_after(bucket, self._rpm))

    async def failed(self, client: str | None) -> None:
        subject = _subject(client)
        bucket = refill(self._buckets.pop(subject, None), self._rpm, self._clock())
        self._buckets[subject] = take(bucket) if bucket.tokens >= 1.0 else bucket
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)


class SharedLoginThrottle:
    """Across replicas, through a quota limiter (RedisLimiter) wrapped fail-open.

    Every authenticated request asks :meth:`check`, so a client the shared bucket found
    in budget is believed for ``clear_for_s`` without asking Redis again (a busy API
    client would otherwise pay a Redis read per request). A failure seen by this process
    ends that (a check already in flight when it happens may start it again, for at most
    ``clear_for_s``); failures counted by other replicas are seen within ``clear_for_s``.
    """

    def __init__(
        self,
        limiter: QuotaLimiter,
        per_minute: int,
        *,
        clear_for_s: float = 1.0,
        max_clients: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = FailSafeLimiter(limiter, "open")
        self._policy = QuotaPolicy(rpm=per_minute)
        self._clear_for_s = clear_for_s
        self._max_clients = max_clients
        self._clock = clock
        self._clear_until: dict[str, float] = {}

    async def check(self, client: str | None) -> None:
        subject = _subject(client)
        if self._clear_until.get(subject, 0.0) > self._clock():
            return
        limit = Limit(subject, self._policy)
        headroom = await self._limiter.peek([limit], Window.at(datetime.now(UTC)))
        if headroom and headroom[0].remaining < 1:
            # The shared bucket does not say how far from a whole token it is; one
            # token's refill time is the longest the wait can be.
            raise TooManyFailedLogins(60.0 / (self._policy.rpm or 1))
        if len(self._clear_until) >= self._max_clients:
            self._clear_until.clear()  # a flood of addresses: start over, never grow
        self._clear_until[subject] = self._clock() + self._clear_for_s

    async def failed(self, client: str | None) -> None:
        self._clear_until.pop(_subject(client), None)
        limit = Limit(_subject(client), self._policy)
        # A fresh id: every failure counts (the limiter ignores a replayed request id).
        await self._limiter.admit(uuid.uuid4().hex, [limit], 0, Window.at(datetime.now(UTC)))


def build_login_throttle(per_minute: int, redis: Redis | None) -> LoginThrottle:
    """In-process without ``redis``; shared through it otherwise (the caller owns it)."""
    if redis is None:
        return MemoryLoginThrottle(per_minute)
    return SharedLoginThrottle(RedisLimiter(redis, prefix="eg:authfail", remember_s=60.0), per_minute)
