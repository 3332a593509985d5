"""Building the quota service from settings (called by backend.container)."""

from __future__ import annotations

from backend.db.session import Database
from backend.quota.failsafe import FailSafeLimiter
from backend.quota.limiter import MemoryLimiter, QuotaLimiter
from backend.quota.service import QuotaService
from backend.settings import Settings


def build_quota(settings: Settings, db: Database) -> QuotaService:
    """In-process limits by default; shared Redis limits when ``redis_url`` is set."""
    inner: QuotaLimiter
    if settings.redis_url:
        from redis.asyncio import Redis

        from backend.quota.redis_limiter import RedisLimiter

        inner = RedisLimiter(Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0))
    else:
        inner = MemoryLimiter()
    return QuotaService(db, FailSafeLimiter(inner, settings.quota_on_store_error))
