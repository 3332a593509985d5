"""Shared in-flight counts on a real Redis, as several API processes would use them."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from backend.redis_load import RedisLoadTracker

pytestmark = pytest.mark.integration


async def test_two_trackers_share_counts(redis_client: aioredis.Redis) -> None:
    prefix = redis_client.test_prefix  # type: ignore[attr-defined]
    a = RedisLoadTracker(redis_client, ["code", "legal"], prefix=prefix)
    b = RedisLoadTracker(redis_client, ["code", "legal"], prefix=prefix)
    assert await a.snapshot() == {}
    async with a.hold("legal"), b.hold("legal"), b.hold("code"):
        assert await a.snapshot() == {"legal": 2, "code": 1}
        assert await b.snapshot() == {"legal": 2, "code": 1}
    assert await a.snapshot() == {}


async def test_released_on_error(redis_client: aioredis.Redis) -> None:
    tracker = RedisLoadTracker(redis_client, ["code"], prefix=redis_client.test_prefix)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        async with tracker.hold("code"):
            raise RuntimeError("boom")
    assert await tracker.snapshot() == {}


async def test_expired_lease_of_a_dead_process_is_not_counted(redis_client: aioredis.Redis) -> None:
    tracker = RedisLoadTracker(redis_client, ["code"], lease_s=0.2, prefix=redis_client.test_prefix)  # type: ignore[attr-defined]
    holder = tracker.hold("code")
    await holder.__aenter__()  # a "process" that never releases
    assert await tracker.snapshot() == {"code": 1}
    await asyncio.sleep(0.3)
    assert await tracker.snapshot() == {}
