"""Real PostgreSQL and Redis on 127.0.0.1: fixtures for the service-backed tests (a
pytest plugin, loaded by tests/conftest.py), which live beside the other tests of their
package and are named ``*_pg.py``, ``*_redis.py`` or ``*_services.py``.

Missing services skip with a loud reason; with EXPERTGATE_REQUIRE_SERVICES=1 (CI) a
missing service fails the test instead. ``pg_url`` is a freshly created database that is
dropped afterwards; a test module marked ``postgres`` gets it, Alembic-migrated, as its
``db`` (tests/conftest.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
import redis
import redis.asyncio as aioredis

PG_ADMIN = os.environ.get("EXPERTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EXPERTGATE_TEST_REDIS", "redis://127.0.0.1:6379/15")
REQUIRED = os.environ.get("EXPERTGATE_REQUIRE_SERVICES") == "1"


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if REQUIRED:
        pytest.fail(f"EXPERTGATE_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(f"SKIPPED, NEEDS A SERVICE: {message}")


def dedicated_redis(url: str) -> str:
    """``url`` (a Redis database a test file has to itself) after a ping and a FLUSHDB:
    whatever an earlier run left queued there goes. Skips (fails in CI) if unreachable."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable("Redis at " + url, exc)
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a new, empty database; dropped after the test."""
    name = f"eg_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL at " + PG_ADMIN, exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def twin(redis_client: aioredis.Redis, **kwargs: object) -> aioredis.Redis:
    """A second connection to ``redis_client``'s server and database (another process's,
    in effect); ``kwargs`` override the connection parameters. The caller closes it."""
    conn = redis_client.connection_pool.connection_kwargs
    params = {"host": conn.get("host", "127.0.0.1"), "port": conn.get("port", 6379), "db": conn.get("db", 0)}
    params.update(kwargs)
    return aioredis.Redis(**params)  # type: ignore[arg-type]


@pytest.fixture
async def two_processes(redis_client: aioredis.Redis) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis, str]]:
    """Two connections to the test's Redis (two replicas' own, in effect) and the test's
    key prefix; both closed afterwards."""
    a, b = twin(redis_client), twin(redis_client)
    yield a, b, redis_client.test_prefix  # type: ignore[attr-defined]
    await a.aclose()
    await b.aclose()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable("Redis at " + REDIS_URL, exc)
    client = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"egtest:{uuid.uuid4().hex[:8]}"
    client.test_prefix = prefix  # type: ignore[attr-defined]
    yield client
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
