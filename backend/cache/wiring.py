"""Building the response cache once per process (called by backend/runtime.py)."""

from __future__ import annotations

from redis.asyncio import Redis

from backend.cache.redis_store import RedisStore
from backend.cache.service import IndexVersions, ResponseCache
from backend.cache.store import CacheStore, MemoryStore
from backend.db.session import Database
from backend.knowledge.service import KnowledgeService
from backend.observability.metrics import Metrics
from experts.registry import ExpertRegistry
from router.encoder import Encoder


def build_response_cache(
    registry: ExpertRegistry,
    db: Database,
    knowledge: KnowledgeService | None,
    redis: Redis | None,
    metrics: Metrics | None,
    encoder: Encoder,
) -> ResponseCache | None:
    """The cache, in Redis when the process has one (scale-out: every replica reads the
    answers the others kept), else in-process; None when no expert enables it.
    ``encoder``: the base encoder, whose vectors of questions are compared."""
    if not any(spec.cache.enabled for spec in registry):
        return None
    store: CacheStore = MemoryStore() if redis is None else RedisStore(redis)
    versions = None if knowledge is None else IndexVersions(knowledge)
    return ResponseCache(store, registry, db, versions=versions, metrics=metrics, encoder=encoder)
