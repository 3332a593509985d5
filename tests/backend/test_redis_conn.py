"""backend/redis_conn.py against loopback fakes: a server that accepts and never answers
(tests.fakes.tcp_proxy.HangingServer) and a closed port."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from backend.capacity.redis_store import RedisCapacity
from backend.capacity.types import Pool, Slot
from backend.quota.failsafe import FailSafeLimiter
from backend.quota.redis_limiter import RedisLimiter
from backend.quota.types import Limit, QuotaPolicy, Window
from backend.redis_conn import BoundedRedis, RedisTimedOut, RedisUnavailable, connect_redis
from backend.settings import Settings
from tests.fakes.tcp_proxy import HangingServer

TIMEOUT_S = 0.5
SLACK_S = 0.4  # scheduling noise on a loaded machine; below TIMEOUT_S, so two waits show


@pytest.fixture
async def hung() -> AsyncIterator[BoundedRedis]:
    server = await HangingServer().start()
    client = BoundedRedis.connect(server.url, timeout_s=TIMEOUT_S, probe_s=0.1)
    yield client
    await client.aclose()
    await server.stop()


async def test_a_timeout_marks_redis_down_and_later_calls_fail_at_once(hung: BoundedRedis) -> None:
    started = time.perf_counter()
    with pytest.raises(RedisTimedOut):
        await hung.get("k")
    assert TIMEOUT_S <= time.perf_counter() - started <= TIMEOUT_S + SLACK_S
    assert not hung.health.up
    started = time.perf_counter()
    for _ in range(5):
        with pytest.raises(RedisUnavailable):
            await hung.incr("k")
    assert time.perf_counter() - started < 0.05  # nothing sent, nothing waited for


async def test_a_request_of_several_calls_pays_one_timeout(hung: BoundedRedis) -> None:
    """Quota admit, capacity acquire, release and settle, each wrapped as the services
    wrap them (fail-open): the first call's timeout is the whole cost."""
    window = Window.at(datetime(2026, 1, 1, tzinfo=UTC))
    limits = [Limit("user:1", QuotaPolicy(rpm=10))]
    quota = FailSafeLimiter(RedisLimiter(hung), "open")
    capacity = RedisCapacity(hung)
    started = time.perf_counter()
    admission = await quota.admit("r1", limits, 10, window)
    with pytest.raises(RedisConnectionError):
        await capacity.acquire([Pool("support", 4)], "r1")
    with pytest.raises(RedisConnectionError):
        await capacity.release(Slot("support", "r1:x"))  # a pipeline
    await quota.settle("r1", limits, 10, 5, window)
    assert admission.allowed and not admission.store_ok
    assert time.perf_counter() - started <= TIMEOUT_S + SLACK_S


async def test_many_concurrent_calls_on_stuck_connections_are_each_bounded() -> None:
    """More callers than the pool holds (100), all stuck on a hung server at once: none
    pays a second wait (a retry, or a queue for a free connection). A 1 s deadline, so
    that the CPU time of 120 connects and cancellations on a busy machine stays well
    inside the margin below two deadlines."""
    server = await HangingServer().start()
    client = BoundedRedis.connect(server.url, timeout_s=1.0)

    async def one(i: int) -> tuple[float, BaseException | None]:
        started = time.perf_counter()
        try:
            await client.get(f"k{i}")
        except RedisError as exc:
            return time.perf_counter() - started, exc
        return time.perf_counter() - started, None

    try:
        results = await asyncio.gather(*(one(i) for i in range(120)))
    finally:
        await client.aclose()
        await server.stop()
    assert all(isinstance(exc, RedisError) for _, exc in results)
    assert sum(isinstance(exc, RedisTimedOut) for _, exc in results) == 100  # the pool's size
    assert max(t for t, _ in results) < 1.6, sorted(round(t, 3) for t, _ in results)[-5:]


async def test_the_probe_keeps_running_while_down_and_stops_on_close(hung: BoundedRedis) -> None:
    with pytest.raises(RedisTimedOut):
        await hung.ping()
    await asyncio.sleep(0.1 + TIMEOUT_S + 0.1)  # a probe went out and timed out too
    assert not hung.health.up
    await hung.health.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "redis-health-probe"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_connection_fails_fast_and_does_not_mark_redis_down() -> None:
    client = BoundedRedis.connect(f"redis://127.0.0.1:{_closed_port()}/0", timeout_s=TIMEOUT_S)
    try:
        started = time.perf_counter()
        for _ in range(3):
            with pytest.raises(RedisConnectionError) as caught:
                await client.get("k")
            assert not isinstance(caught.value, RedisUnavailable)
        assert time.perf_counter() - started < 0.2
        assert client.health.up  # the next call tries again: nothing to wait out
    finally:
        await client.aclose()


def test_the_app_client_takes_its_bounds_from_settings() -> None:
    assert connect_redis(Settings(redis_url=None)) is None
    client = connect_redis(Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.4, redis_probe_s=2))
    assert isinstance(client, BoundedRedis)
    assert (client.health.timeout_s, client.health.probe_s) == (0.4, 2)
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 0.4
