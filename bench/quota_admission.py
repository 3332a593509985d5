"""Admission overhead per request: quotas (user + team + global limits, rpm and day/month
token budgets) and expert capacity, in-process and on Redis over loopback, p50/p99.

    .venv/bin/python -m bench.quota_admission [--n 3000] [--redis redis://127.0.0.1:6379/15]

One request at a time (latency, not throughput); limits and capacity are high enough
that every request is admitted. Cases:

- ``*_quota``: the quota check alone (one Lua script on Redis);
- ``*_admission``: quota + capacity slot, as the API does it (two scripts, one after the
  other, on Redis);
- ``redis_admission_concurrent``: the two scripts at the same time on two pooled
  connections;
- ``redis_admission_pipelined``: the two scripts sent in one pipeline (one round trip);
- ``*_lifecycle``: admission + slot release + token settlement (a whole request);
- ``redis_ping``: one PING, the baseline: the least any Redis round trip costs here;
- ``policies_sql`` / ``policies_cached``: QuotaService.admit with its policy lookup on
  SQLite, without and with the per-process policy cache (in-process limiter).

Writes bench/results/quota_admission.json. Timings are reported, never asserted. Target
from the issue: Redis admission p99 <= 1 ms on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

from backend.capacity.local import LocalCapacity
from backend.capacity.redis_store import RedisCapacity
from backend.capacity.types import CapacityStore, Pool
from backend.db.models import QuotaPolicyRow
from backend.db.session import Database, migrate
from backend.principal import Principal
from backend.quota.cache import PolicyCache
from backend.quota.limiter import MemoryLimiter, QuotaLimiter
from backend.quota.redis_limiter import RedisLimiter
from backend.quota.service import QuotaService
from backend.quota.types import Limit, QuotaPolicy, Window
from bench.router_common import machine, write_result

LIMITS = [
    Limit("user:1", QuotaPolicy(rpm=10**9, tokens_per_day=10**15, tokens_per_month=10**15)),
    Limit("team:legal", QuotaPolicy(rpm=10**9, tokens_per_day=10**15)),
    Limit("global", QuotaPolicy(rpm=10**9)),
]
# The routed expert and its overflow candidates, as the API passes them.
POOLS = [Pool("legal", 10**6), Pool("support", 10**6), Pool("general", 10**6)]
WARMUP = 200

Step = Callable[[str], Awaitable[None]]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


async def measure(step: Step, n: int) -> dict[str, float]:
    for i in range(WARMUP):  # script load, connections, caches
        await step(f"warm-{i}-{uuid.uuid4().hex}")
    samples: list[float] = []
    for i in range(n):
        rid = f"b-{i}-{uuid.uuid4().hex}"
        t0 = time.perf_counter()
        await step(rid)
        samples.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": pct(samples, 0.5),
        "p90_ms": pct(samples, 0.9),
        "p99_ms": pct(samples, 0.99),
        "mean_ms": round(statistics.fmean(samples), 4),
        "over_1ms": round(sum(v > 1.0 for v in samples) / len(samples), 4),
    }


def ping(client: aioredis.Redis) -> Step:
    async def step(_: str) -> None:
        await client.ping()

    return step


def quota_only(limiter: QuotaLimiter, window: Window) -> Step:
    async def step(rid: str) -> None:
        assert (await limiter.admit(rid, LIMITS, 100, window)).allowed

    return step


def admission(limiter: QuotaLimiter, store: CapacityStore, window: Window, *, lifecycle: bool) -> Step:
    async def step(rid: str) -> None:
        assert (await limiter.admit(rid, LIMITS, 100, window)).allowed
        slot = await store.acquire(POOLS, rid)
        assert slot is not None
        if lifecycle:
            await store.release(slot)
            await limiter.settle(rid, LIMITS, 100, 80, window)

    return step


def concurrent(limiter: QuotaLimiter, store: CapacityStore, window: Window) -> Step:
    """Quota and capacity at the same time (two pooled connections, no shared pipeline)."""

    async def step(rid: str) -> None:
        admission, slot = await asyncio.gather(limiter.admit(rid, LIMITS, 100, window), store.acquire(POOLS, rid))
        assert admission.allowed and slot is not None

    return step


def pipelined(client: aioredis.Redis, limiter: RedisLimiter, store: RedisCapacity, window: Window) -> Step:
    """Both scripts by EVALSHA in one pipeline: one round trip. (redis-py's Script objects
    in a pipeline add a SCRIPT EXISTS round trip per execute, so the SHAs are sent raw;
    the scripts are loaded by the sequential cases that run first.)"""
    quota_sha, slot_sha = limiter.admit_script.sha, store.acquire_script.sha

    async def step(rid: str) -> None:
        pipe = client.pipeline(transaction=False)
        q_keys, q_args = limiter.admit_call(rid, LIMITS, 100, window)
        c_keys, c_args = store.acquire_call(POOLS, rid)
        pipe.evalsha(quota_sha, len(q_keys), *q_keys, *q_args)
        pipe.evalsha(slot_sha, len(c_keys), *c_keys, *c_args)
        quota_reply, slot_reply = await pipe.execute()
        assert limiter.admission_of(LIMITS, window, quota_reply).allowed
        assert store.slot_of(POOLS, str(c_args[0]), slot_reply) is not None

    return step


async def policy_lookup(n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        migrate(url)
        db = Database(url)
        async with db.transaction() as session:
            session.add(QuotaPolicyRow(scope="user", name="ann@example.com", rpm=10**9, on_limit="reject"))
            session.add(QuotaPolicyRow(scope="team", name="legal", tokens_per_day=10**15, on_limit="reject"))
            session.add(QuotaPolicyRow(scope="global", name="*", rpm=10**9, on_limit="reject"))
        ann = Principal(1, "ann@example.com", "legal", frozenset(), frozenset())
        out: dict[str, object] = {}
        for name, cache in (("policies_sql", None), ("policies_cached", PolicyCache(5.0))):
            service = QuotaService(db, MemoryLimiter(), cache=cache)

            async def step(rid: str, service: QuotaService = service) -> None:
                assert len((await service.admit(ann, rid, 100)).limits) == 3

            out[name] = await measure(step, n)
        await db.dispose()
    return out


async def main_async(n: int, url: str) -> dict[str, object]:
    window = Window.at(datetime.now(UTC))
    out: dict[str, object] = {"n": n, "limits": len(LIMITS), "pools": len(POOLS), "machine": machine()}
    out["memory_quota"] = await measure(quota_only(MemoryLimiter(), window), n)
    out["memory_admission"] = await measure(admission(MemoryLimiter(), LocalCapacity(), window, lifecycle=False), n)
    out["memory_lifecycle"] = await measure(admission(MemoryLimiter(), LocalCapacity(), window, lifecycle=True), n)
    out.update(await policy_lookup(n))
    client = aioredis.Redis.from_url(url)
    prefix = f"egbench:{uuid.uuid4().hex[:8]}"
    try:
        await client.ping()
        # Slots of the admission-only cases are never released: a short lease keeps
        # the sorted sets small, as in a server where requests finish.
        limiter = RedisLimiter(client, prefix=prefix)
        store = RedisCapacity(client, lease_s=2.0, prefix=prefix)
        out["redis_ping"] = await measure(ping(client), n)
        out["redis_quota"] = await measure(quota_only(limiter, window), n)
        out["redis_admission"] = await measure(admission(limiter, store, window, lifecycle=False), n)
        out["redis_admission_concurrent"] = await measure(concurrent(limiter, store, window), n)
        out["redis_admission_pipelined"] = await measure(pipelined(client, limiter, store, window), n)
        out["redis_lifecycle"] = await measure(admission(limiter, store, window, lifecycle=True), n)
    finally:
        keys = [k async for k in client.scan_iter(f"{prefix}*")]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
        await client.aclose()
    return out


CASES = (
    "memory_quota",
    "memory_admission",
    "memory_lifecycle",
    "policies_sql",
    "policies_cached",
    "redis_ping",
    "redis_quota",
    "redis_admission",
    "redis_admission_concurrent",
    "redis_admission_pipelined",
    "redis_lifecycle",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args.n, args.redis))
    for key in CASES:
        print(f"{key:27s} {result[key]}")
    print("machine load average:", result["machine"]["loadavg"])  # type: ignore[index]
    print("written to", write_result("quota_admission", result))


if __name__ == "__main__":
    main()
