"""The one Redis client of an API process, shared by quotas, expert capacity and the
quota-policy cache, and closed by the container on shutdown.

Short socket timeouts and a single immediate retry (a pooled connection may be stale
after Redis restarted) bound what a dead Redis costs a request to about one second,
after which each user applies its fail-open / fail-closed setting. redis-py's default
retry policy would back off for several seconds per command instead.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from backend.settings import Settings


def bounded_options() -> dict[str, Any]:
    """Connection options of every client on the request path (a fresh Retry each)."""
    return {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, "retry": Retry(NoBackoff(), 1)}


def connect_redis(settings: Settings) -> Redis | None:
    """A client for ``settings.redis_url`` (None when unset: the embedded default).

    Connects lazily, so building it never fails on an unreachable Redis."""
    if not settings.redis_url:
        return None
    return Redis.from_url(settings.redis_url, **bounded_options())
