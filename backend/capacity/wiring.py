"""Building the capacity service from settings (called by backend.runtime)."""

from __future__ import annotations

from redis.asyncio import Redis

from backend.capacity.local import LocalCapacity
from backend.capacity.redis_store import RedisCapacity
from backend.capacity.service import CapacityService
from backend.capacity.types import CapacityStore, pools_from
from backend.settings import Settings
from experts.registry import ExpertRegistry
from router.service import Router


def build_capacity(
    settings: Settings, registry: ExpertRegistry, router: Router, redis: Redis | None
) -> CapacityService:
    """In-process slots by default; slots shared through Redis when a client is given."""
    store: CapacityStore
    if redis is not None:
        store = RedisCapacity(redis, lease_s=settings.capacity_lease_s)
    else:
        store = LocalCapacity(lease_s=settings.capacity_lease_s)
    return CapacityService(
        store, pools_from(registry), lambda: router.policy, on_store_error=settings.quota_on_store_error
    )
