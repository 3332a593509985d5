"""The failed-login throttle on real Redis: two replicas share one budget per client
address, and a Redis outage lets sign-ins through (fail-open) instead of failing them."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from backend.identity.throttle import SharedLoginThrottle, TooManyFailedLogins
from backend.quota.redis_limiter import RedisLimiter
from tests.integration.conftest import twin

pytestmark = pytest.mark.integration


async def test_replicas_share_the_failed_login_budget(redis_client: aioredis.Redis) -> None:
    prefix = redis_client.test_prefix  # type: ignore[attr-defined]
    a_conn, b_conn = twin(redis_client), twin(redis_client)
    try:
        a = SharedLoginThrottle(RedisLimiter(a_conn, prefix=prefix, remember_s=60), per_minute=3)
        b = SharedLoginThrottle(RedisLimiter(b_conn, prefix=prefix, remember_s=60), per_minute=3)
        await a.failed("192.0.2.7")
        await b.failed("192.0.2.7")
        await a.check("192.0.2.7")  # one failure left
        await b.failed("192.0.2.7")
        for replica in (a, b):
            with pytest.raises(TooManyFailedLogins) as refused:
                await replica.check("192.0.2.7")
            assert refused.value.status == 429 and refused.value.retry_after_s > 0
        await a.check("192.0.2.8")  # another address is not affected
    finally:
        await a_conn.aclose()
        await b_conn.aclose()


async def test_a_redis_outage_fails_open(redis_client: aioredis.Redis) -> None:
    dead = twin(redis_client, port=1, socket_connect_timeout=0.2)
    try:
        throttle = SharedLoginThrottle(RedisLimiter(dead, prefix="unused"), per_minute=1)
        for _ in range(3):
            await throttle.failed("192.0.2.9")
            await throttle.check("192.0.2.9")  # nothing counted, nothing refused
    finally:
        await dead.aclose()
