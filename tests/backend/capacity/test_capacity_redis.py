"""Expert capacity on real Redis: two stores with their own connections (two "API
processes") share each expert's slots exactly, a dead holder's lease expires, replicas
take their share, and two apps sharing one Redis overflow a full expert (the fake
OpenAI server holding answers so requests pile up)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from backend.app import create_app
from backend.capacity.redis_store import RedisCapacity
from backend.capacity.types import Pool
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.services import REDIS_URL

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(two_processes: tuple[aioredis.Redis, aioredis.Redis, str]) -> tuple[RedisCapacity, RedisCapacity]:
    a, b, prefix = two_processes
    return RedisCapacity(a, prefix=prefix), RedisCapacity(b, prefix=prefix)


async def test_many_concurrent_acquirers_get_exactly_the_capacity(pair: tuple[RedisCapacity, RedisCapacity]) -> None:
    pools = [Pool("legal", 7)]
    slots = await asyncio.gather(*(pair[i % 2].acquire(pools, f"r{i}") for i in range(200)))
    held = [s for s in slots if s is not None]
    assert len(held) == 7 and all(s.expert == "legal" for s in held)
    assert await pair[0].in_flight(["legal", "code"]) == {"legal": 7}
    await asyncio.gather(*(pair[1].release(s) for s in held[:3]))
    await pair[1].release(held[0])  # a second release changes nothing
    again = await asyncio.gather(*(pair[0].acquire(pools, f"again{i}") for i in range(10)))
    assert sum(s is not None for s in again) == 3


async def test_overflow_order_and_replicas_in_one_script(pair: tuple[RedisCapacity, RedisCapacity]) -> None:
    a, b = pair
    pools = [Pool("code", 3, replicas=(1, 2)), Pool("general", 1)]
    got = [await (a if i % 2 else b).acquire(pools, f"r{i}") for i in range(5)]
    assert [(s.expert, s.replica) if s else None for s in got] == [
        ("code", 0),  # both replicas empty: the first
        ("code", 1),
        ("code", 1),  # replica 0 is full (1)
        ("general", None),  # code's total (3) is reached: the next candidate
        None,
    ]


async def server_ms(redis_client: aioredis.Redis) -> int:
    """The Redis server's clock (ms), which lease deadlines are measured on."""
    seconds, micros = await redis_client.time()
    return seconds * 1000 + micros // 1000


async def test_a_live_lease_holds_its_slot(redis_client: aioredis.Redis) -> None:
    store = RedisCapacity(redis_client, lease_s=300, prefix=redis_client.test_prefix)  # type: ignore[attr-defined]
    pools = [Pool("code", 2, replicas=(1, 1))]
    assert await store.acquire(pools, "crashed-1") is not None  # "processes" that never release
    assert await store.acquire(pools, "crashed-2") is not None
    assert await store.acquire(pools, "waiting") is None
    assert await store.in_flight(["code"]) == {"code": 2}


async def test_a_dead_holders_lease_expires(redis_client: aioredis.Redis) -> None:
    """Leases expire on the Redis server's clock, which no test can move: the test waits
    for the expiry (a condition, with a generous failure bound), and whenever the server's
    clock shows the lease still running, both slots must be held. That a live lease
    refuses a newcomer is the test above, with a lease no machine is slow enough to
    outlast."""
    store = RedisCapacity(redis_client, lease_s=0.3, prefix=redis_client.test_prefix)  # type: ignore[attr-defined]
    pools = [Pool("code", 2, replicas=(1, 1))]
    taken_ms = await server_ms(redis_client)  # both leases are taken at or after this
    assert await store.acquire(pools, "crashed-1") is not None  # "processes" that never release
    assert await store.acquire(pools, "crashed-2") is not None
    for _ in range(300):  # 15 s at most: a failure bound, not an ordering
        held = await store.in_flight(["code"])
        if await server_ms(redis_client) < taken_ms + 300:  # read after the count: still live then
            assert held == {"code": 2}, "a lease expired before its time"
        elif held == {}:
            break
        await asyncio.sleep(0.05)
    assert await store.in_flight(["code"]) == {}, "the leases never expired"
    assert await store.acquire(pools, "after the lease") is not None
    assert await store.acquire(pools, "and its replica") is not None  # the replica slots expired too


def _app_runtime(tmp_path: Path, encoder: Encoder, api_base: str, name: str) -> Runtime:
    settings = Settings(
        data_dir=tmp_path / name,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", api_base, legal={"capacity": 1}),
        redis_url=REDIS_URL,
        bootstrap_admin=False,
    )
    return build_runtime(settings, encoder=encoder, environ={})


@pytest.fixture
async def two_apps(
    tmp_path: Path, llm: FakeOpenAI, encoder: Encoder, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[Runtime, Runtime]]:
    await _clear_slots(redis_client)
    one = _app_runtime(tmp_path, encoder, llm.api_base, "one")
    two = _app_runtime(tmp_path, encoder, llm.api_base, "two")
    yield one, two
    await one.close()
    await two.close()
    await _clear_slots(redis_client)


async def _clear_slots(redis_client: aioredis.Redis) -> None:
    keys = [k async for k in redis_client.scan_iter("eg:cap:*")]
    if keys:
        await redis_client.delete(*keys)


def http(runtime: Runtime, key: str) -> httpx.AsyncClient:
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers={"authorization": f"Bearer {key}"}
    )


def ask(model: str) -> dict[str, Any]:
    question = "what is the liability cap in the MSA contract?"
    return {"model": model, "messages": [{"role": "user", "content": question}]}


async def test_a_full_expert_overflows_across_processes(two_apps: tuple[Runtime, Runtime], llm: FakeOpenAI) -> None:
    one, two = two_apps
    key = await make_key(one, "dee@example.com")
    release = threading.Event()
    llm.script(Reply("a held legal answer", hold=release))
    async with http(one, key) as first, http(two, key) as second:
        held = asyncio.create_task(first.post("/v1/chat/completions", json=ask("legal")))
        deadline = asyncio.get_running_loop().time() + 30  # the first request loads indexes
        while not llm.requests:
            assert not held.done(), (await held).text
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert await two.capacity.in_flight() == {"legal": 1}  # seen from the other process

        refused = await second.post("/v1/chat/completions", json=ask("legal"))
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "expert_at_capacity"
        assert refused.headers["retry-after"] == "1"
        rerouted = await second.post("/v1/chat/completions", json=ask("auto"))
        assert rerouted.status_code == 200, rerouted.text
        info = rerouted.json()["expertgate"]
        assert (info["reason"], info["detail"]) == ("overflow", "legal at capacity")
        assert info["expert"] != "legal"
        release.set()
        assert (await held).status_code == 200
    assert await one.capacity.in_flight() == {}


async def test_the_runtime_closes_its_redis_client(
    tmp_path: Path, llm: FakeOpenAI, encoder: Encoder, redis_client: aioredis.Redis
) -> None:
    runtime = _app_runtime(tmp_path, encoder, llm.api_base, "solo")
    assert runtime.redis is not None
    ours = await runtime.redis.client_id()  # opens the pooled connection quotas and slots use
    assert ours in {int(c["id"]) for c in await redis_client.client_list()}
    await runtime.close()
    for _ in range(200):  # the server notices the closed socket when it next reads it
        if ours not in {int(c["id"]) for c in await redis_client.client_list()}:
            break
        await asyncio.sleep(0.05)
    assert ours not in {int(c["id"]) for c in await redis_client.client_list()}


async def test_metrics_show_the_broker_queue_depth(
    tmp_path: Path, llm: FakeOpenAI, encoder: Encoder, redis_client: aioredis.Redis
) -> None:
    runtime = _app_runtime(tmp_path, encoder, llm.api_base, "metrics")
    await redis_client.delete("celery")
    await redis_client.rpush("celery", "task-1", "task-2", "task-3")  # three tasks waiting for a worker
    try:
        async with http(runtime, "no-key-needed") as client:
            r = await client.get("/metrics")
        assert r.status_code == 200
        assert 'expertgate_queue_depth{queue="celery"} 3.0' in r.text
    finally:
        await redis_client.delete("celery")
        await runtime.close()
