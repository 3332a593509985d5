"""Building the quota service from settings (called by backend.runtime)."""

from __future__ import annotations

from redis.asyncio import Redis

from backend.db.session import Database
from backend.quota.cache import PolicyCache, PolicyVersion
from backend.quota.failsafe import FailSafeLimiter
from backend.quota.limiter import MemoryLimiter, QuotaLimiter
from backend.quota.redis_limiter import RedisLimiter
from backend.quota.service import QuotaService
from backend.settings import Settings


def build_quota(settings: Settings, db: Database, redis: Redis | None) -> QuotaService:
    """In-process limits by default; shared Redis limits (and a shared policy version
    for the policy cache) when a client is given. The caller owns and closes ``redis``."""
    inner: QuotaLimiter = MemoryLimiter() if redis is None else RedisLimiter(redis)
    cache = PolicyCache(settings.quota_policy_ttl_s, None if redis is None else PolicyVersion(redis))
    return QuotaService(db, FailSafeLimiter(inner, settings.quota_on_store_error), cache=cache)
