"""Admission overhead per request: the quota check (user + team + global limits, rpm and
day/month token budgets) in-process and on Redis over loopback, p50/p99.

    .venv/bin/python -m bench.quota_admission [--n 5000] [--redis redis://127.0.0.1:6379/15]

One request at a time (latency, not throughput); limits are high enough that every
request is admitted. Writes bench/results/quota_admission.json. Timings are reported,
never asserted. Target from the issue: Redis admission p99 <= 1 ms on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

import redis.asyncio as aioredis

from backend.quota.limiter import MemoryLimiter, QuotaLimiter
from backend.quota.redis_limiter import RedisLimiter
from backend.quota.types import Limit, QuotaPolicy, Window
from bench.router_common import machine, write_result

LIMITS = [
    Limit("user:1", QuotaPolicy(rpm=10**9, tokens_per_day=10**15, tokens_per_month=10**15)),
    Limit("team:legal", QuotaPolicy(rpm=10**9, tokens_per_day=10**15)),
    Limit("global", QuotaPolicy(rpm=10**9)),
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


async def measure(limiter: QuotaLimiter, n: int, settle: bool) -> dict[str, float]:
    window = Window.at(datetime.now(UTC))
    for i in range(200):  # warm-up (script load, connection)
        await limiter.admit(f"warm-{i}-{uuid.uuid4().hex}", LIMITS, 100, window)
    samples: list[float] = []
    for i in range(n):
        rid = f"b-{i}-{uuid.uuid4().hex}"
        t0 = time.perf_counter()
        admission = await limiter.admit(rid, LIMITS, 100, window)
        if settle:
            await limiter.settle(rid, LIMITS, 100, 80, window)
        samples.append((time.perf_counter() - t0) * 1000)
        assert admission.allowed
    return {"p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99), "mean_ms": round(statistics.fmean(samples), 4)}


async def main_async(n: int, url: str) -> dict[str, object]:
    out: dict[str, object] = {"n": n, "limits": len(LIMITS), "machine": machine()}
    out["memory_admit"] = await measure(MemoryLimiter(), n, settle=False)
    out["memory_admit_settle"] = await measure(MemoryLimiter(), n, settle=True)
    client = aioredis.Redis.from_url(url)
    prefix = f"egbench:{uuid.uuid4().hex[:8]}"
    try:
        await client.ping()
        out["redis_admit"] = await measure(RedisLimiter(client, prefix=prefix), n, settle=False)
        out["redis_admit_settle"] = await measure(RedisLimiter(client, prefix=prefix), n, settle=True)
    finally:
        keys = [k async for k in client.scan_iter(f"{prefix}*")]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
        await client.aclose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args.n, args.redis))
    for key in ("memory_admit", "memory_admit_settle", "redis_admit", "redis_admit_settle"):
        print(f"{key:22s} {result[key]}")
    print("written to", write_result("quota_admission", result))


if __name__ == "__main__":
    main()
