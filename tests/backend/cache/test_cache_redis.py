"""The response cache's Redis store on real Redis: two replicas (two clients, each with
its own mirror of the question vectors) share answers exactly and semantically; the
exact key keeps one answer per access variant; TTL, the bound on a scope's log, a new
log after the old one expired, and the service on top of it (a hit kept by one replica,
served by the other)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import redis.asyncio as aioredis

from backend.cache.redis_store import RedisStore
from backend.cache.service import Delivered, ResponseCache
from backend.cache.store import unit
from backend.cache.types import CachedAnswer, CacheStatus, MatchKind
from backend.knowledge.types import Retrieval
from experts.registry import ExpertRegistry
from experts.types import Usage
from tests.services import twin

pytestmark = pytest.mark.integration


def vec(*weights: float) -> np.ndarray:
    row = np.zeros(8, dtype=np.float32)
    row[: len(weights)] = weights
    return unit(row)


def answer(request_id: str, ttl_s: float = 60.0, text: str = "") -> CachedAnswer:
    now = time.time()
    return CachedAnswer(
        request_id=request_id, expert="legal", question="q", text=text or f"answer {request_id}",
        upstream_model="m", usage=Usage(5, 7), passages=(), domains=(), index_versions=(), grounding=None,
        stored_at=now, expires_at=now + ttl_s,
    )  # fmt: skip


@pytest.fixture
def replicas(two_processes: tuple[aioredis.Redis, aioredis.Redis, str]) -> tuple[RedisStore, RedisStore]:
    a, b, prefix = two_processes
    return RedisStore(a, prefix=prefix), RedisStore(b, prefix=prefix)


async def test_an_answer_kept_by_one_replica_is_found_by_the_other(replicas: tuple[RedisStore, RedisStore]) -> None:
    a, b = replicas
    assert await b.find("s", "k1", vec(1, 0), 0.9, 4) == []  # b mirrors the empty log first
    await a.put("s", "k1", "", vec(1, 0), answer("r1", text="Twelve months of fees."), 100)
    await a.put("s", "k2", "", vec(0, 1), answer("r2"), 100)
    exact = await b.find("s", "k1", vec(1, 0), 0.9, 4)
    assert [(c.answer.request_id, c.match) for c in exact] == [("r1", MatchKind.EXACT)]
    assert exact[0].answer.text == "Twelve months of fees." and exact[0].answer.usage == Usage(5, 7)
    near = await b.find("s", "k-other", vec(1, 0.2), 0.95, 4)  # cos 0.98 to r1, 0.2 to r2
    assert [(c.answer.request_id, c.match) for c in near] == [("r1", MatchKind.SEMANTIC)]
    assert near[0].similarity == pytest.approx(0.9806, abs=1e-3)
    assert await b.find("other-scope", "k1", vec(1, 0), 0.9, 4) == []


async def test_variants_of_one_question_live_side_by_side_and_the_same_variant_replaces(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    a, b = replicas
    await a.put("s", "k", "team", vec(1), answer("with-doc"), 100)
    await a.put("s", "k", "", vec(1), answer("open"), 100)
    assert {c.answer.request_id for c in await b.find("s", "k", None, 0.9, 4)} == {"with-doc", "open"}
    await b.put("s", "k", "", vec(1), answer("open-2"), 100)
    found = await a.find("s", "k", vec(1), 0.9, 4)
    assert {c.answer.request_id for c in found} == {"with-doc", "open-2"}  # "open" is gone, vector too
    assert all(c.match is MatchKind.EXACT for c in found)


async def test_ttl_and_the_log_bound(replicas: tuple[RedisStore, RedisStore], redis_client: aioredis.Redis) -> None:
    a, b = replicas
    await a.put("s", "short", "", vec(1, 0), answer("brief", ttl_s=0.2), 100)
    assert await b.find("s", "short", vec(1, 0), 0.9, 4)
    await asyncio.sleep(0.35)
    assert await b.find("s", "short", vec(1, 0), 0.9, 4) == []
    for i in range(5):  # a bound of 3 answers: the log keeps the newest 3
        await a.put("t", f"k{i}", "", vec(1, i), answer(f"n{i}"), 3)
    prefix = redis_client.test_prefix  # type: ignore[attr-defined]
    assert await redis_client.llen(f"{prefix}:l:t") == 3
    assert int(await redis_client.get(f"{prefix}:b:t")) == 2
    # A replica that never read the log sees the newest 3 only; the trimmed ones are not
    # offered by their vector (their entries still live until their own TTL).
    found = await b.find("t", "none", vec(1, 0), 0.0001, 10)
    assert {c.answer.request_id for c in found} == {"n2", "n3", "n4"}


async def test_a_new_log_after_the_old_expired_is_mirrored_afresh(
    replicas: tuple[RedisStore, RedisStore], redis_client: aioredis.Redis
) -> None:
    a, b = replicas
    await a.put("s", "k1", "", vec(1, 0), answer("old"), 100)
    assert await b.find("s", "zz", vec(1, 0), 0.9, 4)
    prefix = redis_client.test_prefix  # type: ignore[attr-defined]
    await redis_client.delete(*[k async for k in redis_client.scan_iter(f"{prefix}*")])  # all of it expired
    await a.put("s", "k2", "", vec(0, 1), answer("new"), 100)
    found = await b.find("s", "zz", vec(0, 1), 0.9, 4)
    assert [c.answer.request_id for c in found] == ["new"]
    assert await b.find("s", "zz", vec(1, 0), 0.9, 4) == []  # the old vector was dropped


async def test_the_service_on_redis_serves_one_replicas_answer_from_another(redis_client: aioredis.Redis) -> None:
    registry = ExpertRegistry.from_mapping(
        {"experts": {name: {"llm": {"model": "openai/m", "api_base": "http://x"}, "system_prompt": "p",
                            "description": "an expert of tests", "cache": {"enabled": True, "threshold": 0.9}}
                     for name in ("legal", "general")}}
    )  # fmt: skip
    prefix = redis_client.test_prefix  # type: ignore[attr-defined]
    clients = [twin(redis_client), twin(redis_client)]
    one, two = (ResponseCache(RedisStore(c, prefix=prefix), registry, db=None) for c in clients)  # type: ignore[arg-type]
    args = dict(use=True, conversation_id=None, roles=["user"], pii=False, temperature=None, max_tokens=None,
                encoder="minilm", vector=vec(1, 0), groups=frozenset())  # fmt: skip
    try:
        first = await one.lookup("legal", "How long do we keep invoices?", **args)  # type: ignore[arg-type]
        assert first is not None and first.status is CacheStatus.MISS
        kept = Delivered(
            request_id="r1", decided="legal", expert="legal", text="Ten years.", upstream_model="m",
            usage=Usage(20, 3), fallbacks=0, finish_reason="stop", held=False, retrieval=Retrieval(),
            grounding=None, output=None,
        )  # fmt: skip
        assert await one.store(first, "How long do we keep invoices?", kept) is None
        hit = await two.lookup("legal", "how long do we keep invoices", **args)  # type: ignore[arg-type]
        assert hit is not None and hit.hit is not None and hit.hit.answer.text == "Ten years."
        assert hit.record()["source_request_id"] == "r1" and hit.record()["tokens_saved"] == 23
    finally:
        for c in clients:
            await c.aclose()
