"""The per-process quota policy cache: TTL, invalidation on change, the shared version
(bumped by another process), Redis trouble falling back to the TTL, and through the app:
an admin change is seen at once by the next request."""

from __future__ import annotations

import httpx
import pytest

from backend.app import create_app
from backend.principal import Principal
from backend.quota.cache import PolicyCache
from backend.quota.types import Limit, QuotaPolicy
from backend.runtime import Runtime
from tests.conftest import make_key
from tests.fakes.openai_server import FakeOpenAI

ANN = Principal(1, "Ann@example.com", "legal", frozenset(), frozenset())
BEN = Principal(2, "ben@example.com", None, frozenset(), frozenset())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Stands in for the SQL lookup: counts calls, returns the current policy."""

    def __init__(self) -> None:
        self.calls = 0
        self.rpm = 10

    async def __call__(self) -> tuple[Limit, ...]:
        self.calls += 1
        return (Limit("user:ann@example.com", QuotaPolicy(rpm=self.rpm)),)


class SharedCounter:
    """The version source as every process sees it (Redis INCR/GET in production)."""

    def __init__(self) -> None:
        self.value = 0
        self.down = False

    async def current(self) -> int:
        if self.down:
            raise ConnectionError("redis down")
        return self.value

    async def bump(self) -> None:
        if self.down:
            raise ConnectionError("redis down")
        self.value += 1


async def test_policies_are_cached_per_caller_for_the_ttl() -> None:
    clock, load = Clock(), Loader()
    cache = PolicyCache(5.0, clock=clock)
    first = await cache.limits(ANN, load)
    load.rpm = 99  # changed in SQL by someone who did not tell this process
    assert await cache.limits(ANN, load) == first and load.calls == 1
    await cache.limits(BEN, load)
    assert load.calls == 2  # another caller is another entry
    clock.now += 5.0
    assert (await cache.limits(ANN, load))[0].policy.rpm == 99 and load.calls == 3


async def test_a_change_in_this_process_is_seen_at_once() -> None:
    load = Loader()
    cache = PolicyCache(60.0, clock=Clock())
    await cache.limits(ANN, load)
    load.rpm = 3
    await cache.changed()
    assert (await cache.limits(ANN, load))[0].policy.rpm == 3


async def test_a_change_in_another_process_is_seen_within_the_version_check() -> None:
    clock, shared = Clock(), SharedCounter()
    here, there = PolicyCache(60.0, shared, check_s=1.0, clock=clock), PolicyCache(60.0, shared, clock=clock)
    load = Loader()
    await here.limits(ANN, load)
    load.rpm = 7
    await there.changed()  # the other process changed the policy and bumped the version
    clock.now += 0.5
    assert (await here.limits(ANN, load))[0].policy.rpm == 10  # not checked again yet
    clock.now += 0.6
    assert (await here.limits(ANN, load))[0].policy.rpm == 7


async def test_unreachable_version_falls_back_to_the_ttl(caplog: pytest.LogCaptureFixture) -> None:
    clock, shared, load = Clock(), SharedCounter(), Loader()
    cache = PolicyCache(5.0, shared, check_s=1.0, clock=clock)
    await cache.limits(ANN, load)
    shared.down = True
    load.rpm = 4
    await cache.changed()  # logged, not raised; this process's own cache is cleared
    assert "could not announce" in caplog.text
    assert (await cache.limits(ANN, load))[0].policy.rpm == 4
    load.rpm = 5
    clock.now += 2.0
    assert (await cache.limits(ANN, load))[0].policy.rpm == 4  # version unreadable: the TTL rules
    clock.now += 3.1
    assert (await cache.limits(ANN, load))[0].policy.rpm == 5


async def test_ttl_zero_disables_the_cache() -> None:
    load = Loader()
    cache = PolicyCache(0.0)
    await cache.limits(ANN, load)
    await cache.limits(ANN, load)
    assert load.calls == 2


async def test_an_admin_change_applies_to_the_next_request(runtime: Runtime, llm: FakeOpenAI) -> None:
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    user = await make_key(runtime, "cat@example.com")
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    ask = {"model": "general", "messages": [{"role": "user", "content": "hi"}]}
    async with (
        httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"authorization": f"Bearer {admin}"}
        ) as root,
        httpx.AsyncClient(transport=transport, base_url="http://t", headers={"authorization": f"Bearer {user}"}) as cat,
    ):
        r = await cat.post("/v1/chat/completions", json=ask)
        assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers  # no policy, cached
        put = await root.put("/api/v1/admin/quotas", json={"scope": "user", "name": "cat@example.com", "rpm": 1})
        assert put.status_code == 200, put.text
        r = await cat.post("/v1/chat/completions", json=ask)
        assert r.headers["x-ratelimit-limit-requests"] == "1"
        assert (await cat.post("/v1/chat/completions", json=ask)).status_code == 429
