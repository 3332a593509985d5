"""Redis going away in the middle of a load run, through the whole HTTP app.

The app's Redis (quotas, expert capacity, the policy-version key) is reached through a
TCP proxy that the test cuts and restores, so the shared Redis server stays up for the
other tests. While Redis is away every request still gets an answer within a bound
(fail-open: served; fail-closed: 503 with a stable code), nothing hangs, the app keeps
running, and once Redis is back the limits are enforced again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from backend.app import create_app
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.tcp_proxy import Proxy

pytestmark = pytest.mark.integration

WAVE = 8  # concurrent requests per wave
BOUND_S = 10.0  # no request may take longer than this, Redis up or down
RPM = 2 * WAVE + 4  # room for the two waves served through Redis, then 4 more


OUTAGE_DB = 11  # a Redis database of its own: the app's keys have no per-test prefix


@pytest.fixture
async def proxy(redis_client: aioredis.Redis) -> AsyncIterator[Proxy]:
    conn = redis_client.connection_pool.connection_kwargs
    host, port = conn.get("host", "127.0.0.1"), conn.get("port", 6379)
    own = aioredis.Redis(host=host, port=port, db=OUTAGE_DB)
    await own.flushdb()
    await own.aclose()
    proxy = Proxy(host, port)
    await proxy.start()
    yield proxy
    if proxy.running:
        await proxy.stop()


async def _app(tmp_path: Path, encoder: Encoder, llm: FakeOpenAI, proxy: Proxy, on_error: str) -> Runtime:
    settings = Settings(
        data_dir=tmp_path / "data",
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base, support={"capacity": 2 * WAVE}),
        redis_url=f"redis://127.0.0.1:{proxy.port}/{OUTAGE_DB}",
        quota_on_store_error=on_error,
        bootstrap_admin=False,
    )
    return build_runtime(settings, encoder=encoder, environ={})


async def _wave(client: httpx.AsyncClient, tag: str) -> list[httpx.Response]:
    async def one(i: int) -> httpx.Response:
        body = {"model": "support", "messages": [{"role": "user", "content": f"reset my password ({tag} {i})"}]}
        return await asyncio.wait_for(client.post("/v1/chat/completions", json=body), BOUND_S)

    return list(await asyncio.gather(*(one(i) for i in range(WAVE))))


def _codes(responses: list[httpx.Response]) -> list[int]:
    return sorted(r.status_code for r in responses)


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_redis_cut_and_restored_during_load(
    tmp_path: Path, encoder: Encoder, llm: FakeOpenAI, proxy: Proxy, on_error: str
) -> None:
    runtime = await _app(tmp_path, encoder, llm, proxy, on_error)
    admin = await make_key(runtime, "ops@example.com", roles=["admin"])
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime  # ASGITransport runs no lifespan
    headers = {"authorization": f"Bearer {admin}"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers) as c:
            policy = await c.put("/api/v1/admin/quotas", json={"scope": "user", "name": "ops@example.com", "rpm": RPM})
            assert policy.status_code == 200, policy.text

            before = await _wave(c, "before")
            assert _codes(before) == [200] * WAVE, [r.text for r in before if r.status_code != 200]

            await proxy.stop()  # Redis goes away mid-run
            during = await _wave(c, "during")
            if on_error == "open":
                assert _codes(during) == [200] * WAVE, [r.text for r in during if r.status_code != 200]
            else:
                assert _codes(during) == [503] * WAVE
                codes = {r.json()["error"]["code"] for r in during}
                assert codes <= {"quota_unavailable", "capacity_unavailable"}, codes
                assert all(r.json()["error"]["message"] for r in during)

            await proxy.start()  # back, on the same port
            after = await _wave(c, "after")
            assert _codes(after) == [200] * WAVE, [r.text for r in after if r.status_code != 200]

            # The limits resume: the waves before and after used 2 * WAVE of RPM in Redis
            # (a few more may have refilled since), so a further wave is partly refused.
            last = await _wave(c, "over")
            refused = [r for r in last if r.status_code == 429]
            assert refused, "the rpm limit is enforced again once Redis is back"
            assert all(r.headers.get("retry-after") for r in refused)
            assert {r.status_code for r in last} <= {200, 429}
            assert (await c.get("/healthz")).status_code == 200
    finally:
        await runtime.close()
