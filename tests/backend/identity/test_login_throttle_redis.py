"""The failed-login throttle on real Redis: two replicas share one budget per client
address, and a Redis outage lets sign-ins through (fail-open) instead of failing them."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from backend.identity.throttle import SharedLoginThrottle, TooManyFailedLogins
from backend.quota.redis_limiter import RedisLimiter
from tests.services import twin

pytestmark = pytest.mark.integration


async def test_replicas_share_the_failed_login_budget(redis_client: aioredis.Redis) -> None:
    prefix = redis_client.test_prefix  # type: ignore[attr-defined]
    a_conn, b_conn = twin(redis_client), twin(redis_client)
    try:
        now = [0.0]
        a = SharedLoginThrottle(
            RedisLimiter(a_conn, prefix=prefix, remember_s=60), per_minute=3, clock=lambda: now[0]
        )
        b = SharedLoginThrottle(RedisLimiter(b_conn, prefix=prefix, remember_s=60), per_minute=3)
        await a.failed("192.0.2.7")
        await b.failed("192.0.2.7")
        await a.check("192.0.2.7")  # one failure left: a believes that for clear_for_s
        await b.failed("192.0.2.7")
        await a.check("192.0.2.7")  # b's failure is not seen by a yet ...
        now[0] += 1.01  # ... but once the clear window is over
        for replica in (a, b):
            with pytest.raises(TooManyFailedLogins) as refused:
                await replica.check("192.0.2.7")
            assert refused.value.status == 429 and refused.value.retry_after_s > 0
        await a.check("192.0.2.8")  # another address is not affected
    finally:
        await a_conn.aclose()
        await b_conn.aclose()


async def test_a_failure_seen_here_ends_the_clear_window(redis_client: aioredis.Redis) -> None:
    prefix = redis_client.test_prefix  # type: ignore[attr-defined]
    throttle = SharedLoginThrottle(RedisLimiter(redis_client, prefix=prefix, remember_s=60), per_minute=1)
    await throttle.check("192.0.2.10")  # in budget: believed for a second
    await throttle.failed("192.0.2.10")  # the budget is spent, here: no waiting
    with pytest.raises(TooManyFailedLogins):
        await throttle.check("192.0.2.10")


async def test_a_redis_outage_fails_open(redis_client: aioredis.Redis) -> None:
    dead = twin(redis_client, port=1, socket_connect_timeout=0.2)
    try:
        throttle = SharedLoginThrottle(RedisLimiter(dead, prefix="unused"), per_minute=1)
        for _ in range(3):
            await throttle.failed("192.0.2.9")
            await throttle.check("192.0.2.9")  # nothing counted, nothing refused
    finally:
        await dead.aclose()
