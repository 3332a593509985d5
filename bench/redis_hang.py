"""What a hung Redis adds to a chat request, per request, in both fail modes.

    .venv/bin/python -m bench.redis_hang [--n 40] [--burst 8] [--before-n 5] [--redis redis://127.0.0.1:6379/14]

The real app in process (httpx's ASGI transport), the real router, litellm against the
fake OpenAI server on loopback, SQLite, and Redis reached through a TCP proxy
(tests/fakes/tcp_proxy.Proxy) that can *hang*: connections stay open and new ones are
accepted, but nothing is answered (a wedged or SIGSTOPped Redis). The caller has a quota
policy, so every request touches Redis six times: the failed-login throttle, the policy
version, quota admission, a capacity slot, its release, the quota settlement.

Per fail mode (``EXPERTGATE_QUOTA_ON_STORE_ERROR`` open / closed), in a fresh app:

1. warm-up: 5 requests, Redis healthy;
2. ``healthy``: ``--burst`` requests at once, then ``--n`` one at a time;
3. the proxy hangs; ``hung``: the same again (the burst meets the hang: its requests
   are all in flight when it starts; the sequential ones come after);
4. the proxy resumes; ``recovery_s``: until a request is counted by Redis again.

Added latency of a request = its latency - the healthy p50 of the same shape (one at a
time, or in the burst). ``before``: the same with the Redis client the app used before
backend/redis_conn.py bounded it (redis-py with 1 s socket timeouts and one retry per
call, no breaker), ``--before-n`` requests (each takes seconds); 0 skips it.

With ``--n 40`` the p99 is the slowest request. Writes bench/results/redis_hang.json.
Timings are reported, never asserted. Target (issue 25, item 5): a hung Redis adds
<= 1.2 s per request at p99, both fail modes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import redis.asyncio as aioredis
import yaml
from redis.asyncio import Redis

import backend.runtime
from backend.app import create_app
from backend.audit.types import Actor
from backend.identity.service import IdentityService
from backend.quota.policies import PolicyChange, QuotaPolicies
from backend.redis_conn import bounded_options
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from bench.router_common import machine, write_result
from router.encoder import Encoder, SentenceTransformerEncoder, bundled_minilm_path
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.tcp_proxy import Proxy

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "bench@example.com"
WARMUP = 5


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_s": pct(values, 0.5),
        "p99_s": pct(values, 0.99),
        "max_s": round(max(values), 4),
        "mean_s": round(statistics.fmean(values), 4),
    }


def experts_yaml(path: Path, api_base: str) -> Path:
    """The shipped experts.yaml with every expert on the fake server, no retries."""
    raw = yaml.safe_load((ROOT / "experts" / "experts.yaml").read_text())
    raw["defaults"]["llm"] = {"model": "openai/fake-model", "api_base": api_base}
    raw["defaults"]["retries"] = 0
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@contextlib.contextmanager
def unbounded_client() -> Iterator[None]:
    """Build the app with the Redis client it had before backend/redis_conn.py bounded
    it (the same socket options, no deadline per command, no breaker)."""
    original = backend.runtime.connect_redis

    def old(settings: Settings) -> Redis | None:
        return Redis.from_url(settings.redis_url, **bounded_options()) if settings.redis_url else None

    backend.runtime.connect_redis = old  # type: ignore[assignment]
    try:
        yield
    finally:
        backend.runtime.connect_redis = original


async def key_with_limits(runtime: Runtime) -> str:
    async with runtime.db.transaction() as session:
        identity = IdentityService(session)
        secret = (await identity.create_key(await identity.ensure_user(EMAIL))).secret
    async with runtime.db.transaction() as session:
        await QuotaPolicies(session, runtime.audit).set(
            Actor.cli("bench"), "user", EMAIL, PolicyChange(rpm=10**6, tokens_per_day=10**12)
        )
    return secret


async def one(client: httpx.AsyncClient, tag: str) -> tuple[float, int]:
    body = {"model": "support", "messages": [{"role": "user", "content": f"reset my password ({tag})"}]}
    started = time.perf_counter()
    r = await client.post("/v1/chat/completions", json=body)
    return time.perf_counter() - started, r.status_code


async def shape(client: httpx.AsyncClient, n: int, burst: int, tag: str) -> dict[str, Any]:
    """``burst`` requests at once, then ``n`` one at a time: latencies and status codes.
    (The burst first: after a hang it is the burst that meets it.)"""
    conc = await asyncio.gather(*(one(client, f"{tag} burst {i}") for i in range(burst)))
    seq = [await one(client, f"{tag} {i}") for i in range(n)]
    return {
        "sequential": [t for t, _ in seq],
        "burst": [t for t, _ in conc],
        "codes": sorted({code for _, code in [*seq, *conc]}),
    }


async def recovery(client: httpx.AsyncClient, limit_s: float = 10.0) -> float | None:
    """Seconds from now until a response is counted by Redis again (None: not within limit_s)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        body = {"model": "support", "messages": [{"role": "user", "content": "reset my password (recovery)"}]}
        r = await client.post("/v1/chat/completions", json=body)
        if r.status_code == 200 and "x-ratelimit-remaining-requests" in r.headers:
            return round(time.perf_counter() - started, 3)
        await asyncio.sleep(0.02)
    return None


async def run_mode(
    encoder: Encoder, llm: FakeOpenAI, redis_url: str, on_error: str, n: int, burst: int
) -> dict[str, Any]:
    own = aioredis.Redis.from_url(redis_url)
    await own.flushdb()
    conn = own.connection_pool.connection_kwargs
    await own.aclose()
    proxy = Proxy(conn.get("host", "127.0.0.1"), conn.get("port", 6379))
    await proxy.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            experts_file=experts_yaml(Path(tmp) / "experts.yaml", llm.api_base),
            redis_url=f"redis://127.0.0.1:{proxy.port}/{conn.get('db', 0)}",
            quota_on_store_error=on_error,  # type: ignore[arg-type]
            bootstrap_admin=False,
        )
        runtime = build_runtime(settings, encoder=encoder, environ={})
        try:
            app = create_app(settings, runtime)
            app.state.runtime = runtime
            headers = {"authorization": f"Bearer {await key_with_limits(runtime)}"}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b", headers=headers, timeout=60) as c:
                await shape(c, WARMUP, 0, "warm-up")
                healthy = await shape(c, n, burst, "healthy")
                proxy.hang()
                hung = await shape(c, n, burst, "hung")
                proxy.resume()
                back = await recovery(c)
        finally:
            proxy.resume()
            await runtime.close()
            await proxy.stop()
    base_seq = statistics.median(healthy["sequential"])
    base_burst = statistics.median(healthy["burst"])
    return {
        "healthy": {"sequential": summary(healthy["sequential"]), "burst": summary(healthy["burst"])},
        "hung": {"sequential": summary(hung["sequential"]), "burst": summary(hung["burst"])},
        "hung_added": {
            "sequential": summary([t - base_seq for t in hung["sequential"]]),
            "burst": summary([t - base_burst for t in hung["burst"]]),
            "all": summary([t - base_seq for t in hung["sequential"]] + [t - base_burst for t in hung["burst"]]),
        },
        "status_codes": {"healthy": healthy["codes"], "hung": hung["codes"]},
        "recovery_s": back,
    }


async def main_async(n: int, burst: int, before_n: int, url: str) -> dict[str, Any]:
    encoder = SentenceTransformerEncoder(bundled_minilm_path(), name="all-MiniLM-L6-v2")
    llm = FakeOpenAI().start()
    out: dict[str, Any] = {"n": n, "burst": burst, "before_n": before_n, "machine": machine()}
    try:
        for mode in ("open", "closed"):
            out[f"after_{mode}"] = await run_mode(encoder, llm, url, mode, n, burst)
            if before_n:
                with unbounded_client():
                    out[f"before_{mode}"] = await run_mode(encoder, llm, url, mode, before_n, min(burst, 4))
    finally:
        llm.stop()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="requests one at a time, per phase")
    parser.add_argument("--burst", type=int, default=8, help="concurrent requests, per phase")
    parser.add_argument("--before-n", type=int, default=5, help="the same with the old client (0: skip)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args(argv)
    logging.disable(logging.ERROR)  # the app logs an ERROR per request while Redis is down
    result = asyncio.run(main_async(args.n, args.burst, args.before_n, args.redis))
    for key in ("after_open", "after_closed", "before_open", "before_closed"):
        if key not in result:
            continue
        r = result[key]
        print(
            f"{key:13s} healthy p50 {r['healthy']['sequential']['p50_s']:.3f} s | hung added "
            f"p50 {r['hung_added']['all']['p50_s']:.3f} s p99 {r['hung_added']['all']['p99_s']:.3f} s "
            f"max {r['hung_added']['all']['max_s']:.3f} s | codes {r['status_codes']['hung']} | "
            f"recovery {r['recovery_s']} s"
        )
    print("machine load average:", result["machine"]["loadavg"])
    print("written to", write_result("redis_hang", result))


if __name__ == "__main__":
    main()
