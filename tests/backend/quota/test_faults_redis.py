"""Fault injection: a Redis that hangs (accepts connections, never answers), through the
whole HTTP app with the fake OpenAI server, in both fail modes.

Every chat request on the path touches Redis several times (the failed-login throttle,
the policy version, quota admission, a capacity slot, its release, the quota
settlement). A hung Redis must cost a request at most one bounded wait
(``redis_timeout_s``, 1 s), not one per call: before backend/redis_conn.py bounded the
client as a whole, a request took 4 s (fail-closed) to 6.7 s (fail-open).

- a Redis hung from the start (tests.fakes.tcp_proxy.HangingServer): sequential and
  concurrent requests each finish within BOUND_S; fail-open answers, fail-closed
  refuses with 503 and the error table's code (no real services needed);
- a real Redis that hangs mid-run and resumes (tests.fakes.tcp_proxy.Proxy.hang): the
  same bound while hung, and counting resumes once it answers again;
- a Redis that refuses connections (port closed) keeps failing fast, as before.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from backend.app import create_app
from backend.audit.types import Actor
from backend.quota.policies import PolicyChange, QuotaPolicies
from backend.redis_conn import BoundedRedis, RedisTimedOut, RedisUnavailable
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import auth, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.tcp_proxy import HangingServer, Proxy

pytestmark = pytest.mark.faults

SEQUENTIAL = 6
CONCURRENT = 4
BOUND_S = 2.5  # per request, generous: the target is <= 1.2 s added (bench/redis_hang.py)
REFUSED_BOUND_S = 1.0  # a refused connection costs no timeout at all
FAULTS_DB = 12  # a Redis database of its own: the app's keys have no per-test prefix
EMAIL = "ops@example.com"


async def _app(tmp_path: Path, encoder: Encoder, llm: FakeOpenAI, redis_url: str, on_error: str) -> Runtime:
    settings = Settings(
        data_dir=tmp_path / "data",
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        redis_url=redis_url,
        quota_on_store_error=on_error,
        bootstrap_admin=False,
    )
    runtime = build_runtime(settings, encoder=encoder, environ={})
    # As `expertgate serve` does at start-up (ASGITransport runs no lifespan): the LLM
    # client's first call imports ~0.7 s of modules on this CPU, which would count against
    # the first request's bound when this test runs first in its process.
    await runtime.experts.warm()
    return runtime


async def _key_with_limits(runtime: Runtime, rpm: int = 10_000) -> str:
    """A key whose user has a quota policy, so admission really asks the store. Set in
    SQL, not through the admin API (whose change notice would touch Redis first)."""
    key = await make_key(runtime, EMAIL)
    async with runtime.db.transaction() as session:
        await QuotaPolicies(session, runtime.audit).set(
            Actor.cli("test"), "user", EMAIL, PolicyChange(rpm=rpm, tokens_per_day=10**9)
        )
    return key


def _client(runtime: Runtime, key: str) -> httpx.AsyncClient:
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime  # ASGITransport runs no lifespan
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=auth(key))


async def _timed(client: httpx.AsyncClient, tag: str) -> tuple[float, httpx.Response]:
    body = {"model": "support", "messages": [{"role": "user", "content": f"reset my password ({tag})"}]}
    started = time.perf_counter()
    response = await asyncio.wait_for(client.post("/v1/chat/completions", json=body), 30)
    return time.perf_counter() - started, response


async def _sequential_then_concurrent(client: httpx.AsyncClient) -> list[tuple[float, httpx.Response]]:
    out = [await _timed(client, f"seq {i}") for i in range(SEQUENTIAL)]
    out += await asyncio.gather(*(_timed(client, f"conc {i}") for i in range(CONCURRENT)))
    return out


def _check(results: list[tuple[float, httpx.Response]], on_error: str, bound_s: float) -> None:
    times = [round(t, 3) for t, _ in results]
    assert max(times) <= bound_s, f"per-request times {times} s exceed {bound_s} s"
    for _, r in results:
        if on_error == "open":
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"]
        else:
            assert r.status_code == 503, r.text
            error = r.json()["error"]
            assert error["code"] in {"quota_unavailable", "capacity_unavailable"}, error
            assert error["message"]


@pytest.fixture
async def hanging() -> AsyncIterator[HangingServer]:
    server = await HangingServer().start()
    yield server
    await server.stop()


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_hung_redis_costs_a_request_one_bounded_wait(
    tmp_path: Path, encoder: Encoder, llm: FakeOpenAI, hanging: HangingServer, on_error: str
) -> None:
    runtime = await _app(tmp_path, encoder, llm, hanging.url, on_error)
    try:
        key = await _key_with_limits(runtime)
        async with _client(runtime, key) as client:
            results = await _sequential_then_concurrent(client)
        assert hanging.accepted >= 1  # Redis was really asked, and hung
        _check(results, on_error, BOUND_S)
    finally:
        await runtime.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_refused_redis_still_fails_fast(tmp_path: Path, encoder: Encoder, llm: FakeOpenAI, on_error: str) -> None:
    runtime = await _app(tmp_path, encoder, llm, f"redis://127.0.0.1:{_closed_port()}/0", on_error)
    try:
        key = await _key_with_limits(runtime)
        async with _client(runtime, key) as client:
            results = await _sequential_then_concurrent(client)
        _check(results, on_error, REFUSED_BOUND_S)
        assert runtime.redis is not None
        assert runtime.redis.health.up  # type: ignore[attr-defined]  # refusals are fast: no breaker
    finally:
        await runtime.close()


@pytest.fixture
async def proxy(redis_client: aioredis.Redis) -> AsyncIterator[Proxy]:
    conn = redis_client.connection_pool.connection_kwargs
    host, port = conn.get("host", "127.0.0.1"), conn.get("port", 6379)
    own = aioredis.Redis(host=host, port=port, db=FAULTS_DB)
    await own.flushdb()
    await own.aclose()
    proxy = Proxy(host, port)
    await proxy.start()
    yield proxy
    proxy.resume()
    if proxy.running:
        await proxy.stop()


async def _counted_again(client: httpx.AsyncClient, within_s: float) -> httpx.Response:
    """The first response that was counted by Redis again (rate-limit headers present)."""
    deadline = time.monotonic() + within_s
    while True:
        _, r = await _timed(client, "after")
        if r.status_code == 200 and "x-ratelimit-remaining-requests" in r.headers:
            return r
        assert time.monotonic() < deadline, f"still not counted {within_s} s after Redis resumed: {r.status_code}"
        await asyncio.sleep(0.1)


async def _bucket_tokens(redis_client: aioredis.Redis) -> float:
    """The tokens left in the caller's request bucket, unrounded, read from Redis itself
    (the header floors them, and a bucket refills between two requests)."""
    conn = redis_client.connection_pool.connection_kwargs
    own = aioredis.Redis(host=conn.get("host", "127.0.0.1"), port=conn.get("port", 6379), db=FAULTS_DB)
    try:
        keys = [k async for k in own.scan_iter("eg:quota:b:*")]
        assert len(keys) == 1, keys  # one user, one policy, one bucket
        return float(await own.hget(keys[0], "tk"))  # type: ignore[arg-type]
    finally:
        await own.aclose()


@pytest.mark.integration
@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_redis_hanging_mid_run_then_resuming(
    tmp_path: Path, encoder: Encoder, llm: FakeOpenAI, proxy: Proxy, redis_client: aioredis.Redis, on_error: str
) -> None:
    runtime = await _app(tmp_path, encoder, llm, f"redis://127.0.0.1:{proxy.port}/{FAULTS_DB}", on_error)
    try:
        # 60 a minute refills one token a second: two requests in a row, well under a
        # second apart, leave the bucket lower. (At 1,000 a minute a token comes back every
        # 60 ms, and a slow machine's requests took longer than that: the bucket stayed full.)
        key = await _key_with_limits(runtime, rpm=60)
        async with _client(runtime, key) as client:
            before = [await _timed(client, f"before {i}") for i in range(3)]
            assert all(r.status_code == 200 and "x-ratelimit-remaining-requests" in r.headers for _, r in before)

            proxy.hang()  # pooled connections stay open, nothing answers
            _check(await _sequential_then_concurrent(client), on_error, BOUND_S)

            proxy.resume()  # the late replies arrive; the probe sees Redis answer
            first = await _counted_again(client, within_s=3.0)
            after_first = await _bucket_tokens(redis_client)
            elapsed, second = await _timed(client, "after 2")
            after_second = await _bucket_tokens(redis_client)
            assert second.status_code == 200
            assert int(first.headers["x-ratelimit-remaining-requests"]) < 60
            assert elapsed < 0.9, elapsed  # less than one token's refill
            assert after_second < after_first, (after_first, after_second)  # the same bucket, counting on
    finally:
        await runtime.close()


@pytest.mark.integration
async def test_client_probe_marks_redis_up_and_no_late_reply_is_misread(
    redis_client: aioredis.Redis, proxy: Proxy
) -> None:
    client = BoundedRedis.connect(f"redis://127.0.0.1:{proxy.port}/{FAULTS_DB}", timeout_s=0.5, probe_s=0.1)
    try:
        await client.set("eg:faults:a", "a")
        await client.set("eg:faults:b", "b")
        proxy.hang()
        started = time.perf_counter()
        with pytest.raises(RedisTimedOut):
            await client.get("eg:faults:a")  # its reply arrives late, after resume
        for _ in range(3):
            with pytest.raises(RedisUnavailable):
                await client.get("eg:faults:b")
        assert time.perf_counter() - started < 0.9  # one timeout (0.5 s), then at once: not two
        assert not client.health.up
        proxy.resume()
        deadline = time.monotonic() + 2.0
        while not client.health.up:
            assert time.monotonic() < deadline, "the probe did not mark Redis up"
            await asyncio.sleep(0.05)
        assert await client.get("eg:faults:b") == b"b"  # not the late reply for "a"
        assert await client.get("eg:faults:a") == b"a"
    finally:
        await client.aclose()
