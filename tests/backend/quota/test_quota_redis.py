"""Quotas on real Redis: two limiters (two "API processes", each with its own client)
share one limit exactly under concurrency; Redis going away -> fail-open / fail-closed,
and limits resume when it comes back."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from backend.principal import Principal
from backend.quota.cache import PolicyCache, PolicyVersion
from backend.quota.errors import QuotaUnavailable
from backend.quota.failsafe import FailSafeLimiter
from backend.quota.redis_limiter import RedisLimiter
from backend.quota.types import Limit, LimitKind, QuotaPolicy, Window
from backend.redis_conn import bounded_options
from tests.fakes.tcp_proxy import Proxy
from tests.services import twin

pytestmark = pytest.mark.integration

WINDOW = Window.at(datetime.now(UTC))


@pytest.fixture
def pair(two_processes: tuple[aioredis.Redis, aioredis.Redis, str]) -> tuple[RedisLimiter, RedisLimiter]:
    a, b, prefix = two_processes
    return RedisLimiter(a, prefix=prefix), RedisLimiter(b, prefix=prefix)


async def test_two_processes_share_one_rpm_limit_exactly(pair: tuple[RedisLimiter, RedisLimiter]) -> None:
    limits = [Limit("user:1", QuotaPolicy(rpm=37)), Limit("global", QuotaPolicy(rpm=1000))]
    calls = [pair[i % 2].admit(f"req-{i}", limits, 5, WINDOW) for i in range(200)]
    results = await asyncio.gather(*calls)
    admitted = [r for r in results if r.allowed]
    assert len(admitted) == 37
    refused = [r for r in results if not r.allowed]
    assert {(r.subject, r.kind) for r in refused} == {("user:1", LimitKind.RPM)}
    assert all(0 < r.retry_after_s <= 1.7 for r in refused)  # 37/min: a token every ~1.6 s


async def test_two_processes_share_one_token_budget_exactly(pair: tuple[RedisLimiter, RedisLimiter]) -> None:
    limits = [Limit("team:legal", QuotaPolicy(tokens_per_day=205, tokens_per_month=10_000))]
    results = await asyncio.gather(*(pair[i % 2].admit(f"t-{i}", limits, 10, WINDOW) for i in range(60)))
    assert sum(r.allowed for r in results) == 20
    assert {r.kind for r in results if not r.allowed} == {LimitKind.TOKENS_PER_DAY}


async def test_replay_and_settle_count_once_across_processes(
    pair: tuple[RedisLimiter, RedisLimiter], redis_client: aioredis.Redis
) -> None:
    a, b = pair
    limits = [Limit("user:2", QuotaPolicy(rpm=100, tokens_per_day=1000))]
    first = await a.admit("same", limits, 300, WINDOW)
    assert first.allowed and not first.replay
    assert {h.kind: h.remaining for h in first.headroom} == {LimitKind.RPM: 99, LimitKind.TOKENS_PER_DAY: 700}
    assert (await b.admit("same", limits, 300, WINDOW)).replay
    await a.settle("same", limits, 300, 42, WINDOW)
    await b.settle("same", limits, 300, 42, WINDOW)
    prefix = redis_client.test_prefix  # type: ignore[attr-defined]
    assert int(await redis_client.get(f"{prefix}:d:user:2:{WINDOW.day}") or 0) == 42
    peeked = {h.kind: h.remaining for h in await b.peek(limits, WINDOW)}
    assert peeked[LimitKind.TOKENS_PER_DAY] == 1000 - 42
    assert 99 <= peeked[LimitKind.RPM] <= 100  # refilling since the admission


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_redis_going_away_and_coming_back(redis_client: aioredis.Redis, on_error: str) -> None:
    conn = redis_client.connection_pool.connection_kwargs
    proxy = Proxy(conn.get("host", "127.0.0.1"), conn.get("port", 6379))
    await proxy.start()
    client = twin(redis_client, port=proxy.port, **bounded_options())  # as the app connects
    prefix = redis_client.test_prefix  # type: ignore[attr-defined]
    limiter = FailSafeLimiter(RedisLimiter(client, prefix=prefix), on_error)  # type: ignore[arg-type]
    limits = [Limit("user:3", QuotaPolicy(rpm=2))]
    try:
        assert (await limiter.admit("up-1", limits, 1, WINDOW)).allowed
        await proxy.stop()
        for i in range(3):  # no crash, no hang: a bounded answer every time
            if on_error == "open":
                served = await asyncio.wait_for(limiter.admit(f"down-{i}", limits, 1, WINDOW), 5)
                assert served.allowed and not served.store_ok
            else:
                with pytest.raises(QuotaUnavailable):
                    await asyncio.wait_for(limiter.admit(f"down-{i}", limits, 1, WINDOW), 5)
        await proxy.start()  # same port: Redis is back
        back = await limiter.admit("up-2", limits, 1, WINDOW)
        assert back.allowed and back.store_ok
        refused = await limiter.admit("up-3", limits, 1, WINDOW)
        assert not refused.allowed and refused.kind is LimitKind.RPM  # limits resumed
    finally:
        with contextlib.suppress(Exception):
            await proxy.stop()
        await client.aclose()


async def test_policy_change_reaches_other_processes_through_the_version_key(redis_client: aioredis.Redis) -> None:
    key = f"{redis_client.test_prefix}:policy-version"  # type: ignore[attr-defined]
    other = twin(redis_client)  # another process's connection
    clock = [1000.0]  # this process's clock, moved by the test: no real waiting
    here = PolicyCache(60.0, PolicyVersion(redis_client, key), check_s=10, clock=lambda: clock[0])
    there = PolicyCache(60.0, PolicyVersion(other, key), check_s=10)
    ann = Principal(1, "ann@example.com", None, frozenset(), frozenset())
    rpm = 10

    async def load() -> tuple[Limit, ...]:
        return (Limit("user:ann@example.com", QuotaPolicy(rpm=rpm)),)

    try:
        assert (await here.limits(ann, load))[0].policy.rpm == 10
        rpm = 3
        await there.changed()
        clock[0] += 9
        assert (await here.limits(ann, load))[0].policy.rpm == 10  # the version was checked 9 s ago
        clock[0] += 1
        assert (await here.limits(ann, load))[0].policy.rpm == 3  # 10 s: checked, changed, reloaded
    finally:
        await other.aclose()
