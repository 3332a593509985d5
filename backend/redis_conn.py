"""The one Redis client of an API process, shared by quotas, expert capacity and the
quota-policy cache, and closed by the container on shutdown.

Short socket timeouts bound what a dead Redis costs a request (about 1 s), after which
each user applies its fail-open / fail-closed setting.
"""

from __future__ import annotations

from redis.asyncio import Redis

from backend.settings import Settings


def connect_redis(settings: Settings) -> Redis | None:
    """A client for ``settings.redis_url`` (None when unset: the embedded default).

    Connects lazily, so building it never fails on an unreachable Redis."""
    if not settings.redis_url:
        return None
    return Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
