"""ResponseCache: the lookup before an answer is generated and the store after one was
delivered (docs/cache.md). The chat pipeline calls it through backend/chat/caching.py.

A lookup offers the candidates of the request's scope (keys.py), best first, and
replays the first one that is still valid for this caller:

- every index its retrieval searched is still at the version it searched (the expert's
  own index is in the scope; a peer index is checked here): a publish ends it;
- the caller may read every passage it cites (each cited document's groups, kept with
  the answer, against the caller's groups; a regrouped document republishes its index,
  so the groups kept are the groups in force while the version is);
- it has not expired (the store never offers one that has);
- a semantic match only: its answer repeats none of its question's details (a number,
  a name) that the new question lacks (keys.carries_other_details): one asker's
  employee number is never replayed to another whose question merely resembles theirs;
- a semantic match only: the two questions are not the same sentence with a content word
  swapped (keys.swaps_a_word): "annual leave" is not "parental leave", however close
  their vectors.
- a semantic match only: the new question carries no pasted material
  (router.safety.content.pasted): "Summarise this e-mail: ..." with another e-mail is
  another question, however alike the two vectors; only the same text is replayed.

Questions are compared by the base encoder's embedding (the model the knowledge
service and the safety check use), which tells paraphrases from near misses far better
than the router's routing-tuned vectors (docs/cache.md, calibration). The pipeline's
vector is used as is when it is that model's; otherwise the question is embedded here,
off the event loop.

A store failure (Redis down) is a miss, logged and counted, never a failed request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio
from redis.exceptions import RedisError
from sqlalchemy import select

from backend.cache.keys import (
    acl_variant,
    carries_other_details,
    lookup_skip,
    scope_key,
    store_skip,
    swaps_a_word,
    text_key,
)
from backend.cache.store import CacheStore, unit
from backend.cache.types import CachedAnswer, CachedPassage, CacheLookup, CacheStatus, MatchKind, Vector
from backend.db.models import Document
from backend.db.session import Database
from backend.knowledge.service import KnowledgeService
from backend.knowledge.types import Retrieval
from backend.observability.metrics import Metrics
from experts.registry import ExpertRegistry
from experts.types import Usage
from retrieval.acl import visible
from router.encoder import Encoder
from router.safety.content import pasted

log = logging.getLogger(__name__)

# Semantic candidates read per lookup, besides the exact matches; a candidate passed
# over (stale, forbidden) makes way for the next.
CANDIDATES = 4


class IndexVersions:
    """The version of each domain's index as retrieval would search it now. The
    knowledge service checks its CURRENT pointer only when it searches; a process that
    answers a question from the cache does not search, so this asks it to look again,
    at most every ``every_s`` per domain (the same bound a search has)."""

    def __init__(self, knowledge: KnowledgeService, every_s: float = 2.0) -> None:
        self._knowledge = knowledge
        self._every_s = every_s
        self._checked: dict[str, float] = {}

    async def get(self, domain: str) -> str | None:
        if domain not in self._knowledge.domains:
            return None
        now = time.monotonic()
        if now - self._checked.get(domain, -self._every_s) >= self._every_s:
            self._checked[domain] = now
            await self._knowledge.reload(domain)
        return self._knowledge.loaded_version(domain)


@dataclass(frozen=True, slots=True)
class Delivered:
    """An answer as it was delivered, for :meth:`ResponseCache.store`."""

    request_id: str
    decided: str  # the expert the request was decided for (after admission)
    expert: str  # the expert that answered
    text: str
    upstream_model: str
    usage: Usage
    fallbacks: int
    finish_reason: str
    held: bool  # sent to review
    retrieval: Retrieval
    grounding: Mapping[str, object] | None
    output: Mapping[str, int] | None


class ResponseCache:
    def __init__(
        self,
        store: CacheStore,
        registry: ExpertRegistry,
        db: Database,
        *,
        versions: IndexVersions | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        encoder: Encoder | None = None,
    ) -> None:
        self._store = store
        self._encoder = encoder
        self._registry = registry
        self._db = db
        self._versions = versions
        self._metrics = metrics
        self._clock = clock

    def enabled(self, expert: str) -> bool:
        return expert in self._registry and self._registry.get(expert).cache.enabled

    async def lookup(
        self,
        expert: str,
        question: str,
        *,
        use: bool,
        conversation_id: str | None,
        roles: Sequence[str],
        pii: bool,
        temperature: float | None,
        max_tokens: int | None,
        encoder: str | None,
        vector: Vector | None,
        groups: frozenset[str],
    ) -> CacheLookup | None:
        """The cached answer for this request, if one may be replayed to this caller.

        None: the expert's cache is off. ``use`` False (``Cache-Control: no-cache``): not
        looked up (status ``bypass``), but the answer generated may still be kept.
        ``vector`` is the pipeline's embedding of ``question`` made by ``encoder`` (see
        the module docstring for which one is compared).
        """
        if not self.enabled(expert):
            return None
        started = time.perf_counter()
        skip = lookup_skip(conversation_id=conversation_id, roles=roles, pii=pii)
        if skip is not None:
            return self._counted(CacheLookup(CacheStatus.SKIPPED, expert, rejected={skip: 1}, ms=_ms(started)))
        spec = self._registry.get(expert)
        encoder, vector = await self._embedding(question, encoder, vector)
        own = None if spec.index is None or self._versions is None else await self._versions.get(spec.index)
        scope = scope_key(spec, temperature=temperature, max_tokens=max_tokens, index_version=own, encoder=encoder)
        key = text_key(question)
        query = None if vector is None else unit(vector)
        if not use:
            return self._counted(CacheLookup(CacheStatus.BYPASS, expert, scope, key, vector=query, ms=_ms(started)))
        rejected: dict[str, int] = {}
        try:
            candidates = await self._store.find(scope, key, query, spec.cache.threshold, CANDIDATES)
        except RedisError as exc:
            log.warning("response cache unavailable for %s: %s", expert, exc)
            candidates, rejected = [], {"store_error": 1}
        for candidate in candidates:
            reason = await self._invalid(candidate.answer, groups)
            answer = candidate.answer
            semantic = candidate.match is MatchKind.SEMANTIC
            if reason is None and semantic and carries_other_details(answer.question, question, answer.text):
                reason = "details"
            elif reason is None and semantic and swaps_a_word(answer.question, question):
                reason = "swapped_word"
            elif reason is None and semantic and pasted(question) is not None:
                reason = "pasted"
            if reason is not None:
                rejected[reason] = rejected.get(reason, 0) + 1
                continue
            found = CacheLookup(CacheStatus.HIT, expert, scope, key, candidate, rejected, query, ms=_ms(started))
            return self._counted(found)
        missed = CacheLookup(CacheStatus.MISS, expert, scope, key, rejected=rejected, vector=query, ms=_ms(started))
        return self._counted(missed)

    async def _embedding(
        self, question: str, encoder: str | None, vector: Vector | None
    ) -> tuple[str | None, Vector | None]:
        """The base encoder's vector of ``question`` (module docstring), and its name."""
        if self._encoder is None or (vector is not None and encoder == self._encoder.name):
            return encoder, vector
        rows = await anyio.to_thread.run_sync(self._encoder.encode, [question])
        return self._encoder.name, rows[0]

    async def _invalid(self, answer: CachedAnswer, groups: frozenset[str]) -> str | None:
        """Why ``answer`` may not be replayed to a caller in ``groups`` (None: it may)."""
        if answer.expires_at <= self._clock():
            return "expired"
        for domain, version in answer.index_versions:
            if self._versions is not None and await self._versions.get(domain) != version:
                return "stale"
        if not all(visible(p.groups, groups) for p in answer.passages):
            return "forbidden"
        return None

    def _counted(self, lookup: CacheLookup) -> CacheLookup:
        if self._metrics is not None:
            saved = lookup.hit.answer.usage.total_tokens if lookup.hit is not None else 0
            self._metrics.observe_cache(lookup.expert, str(lookup.status), saved)
        return lookup

    async def store(self, lookup: CacheLookup, question: str, answer: Delivered) -> str | None:
        """Keep ``answer`` under ``lookup``'s scope (and the question's vector the lookup
        compared) if it may be replayed later. Returns why it was not kept (None: kept)."""
        if lookup.scope is None or lookup.text_key is None or lookup.hit is not None:
            return "not_cacheable"
        skip = store_skip(
            decided=answer.decided, expert=answer.expert, fallbacks=answer.fallbacks,
            finish_reason=answer.finish_reason, held=answer.held, retrieval=answer.retrieval,
            grounding=answer.grounding, output=answer.output,
        )  # fmt: skip
        if skip is not None:
            return skip
        spec = self._registry.get(answer.expert)
        groups = await self._groups({p.document_id for p in answer.retrieval.passages})
        if any(p.document_id not in groups for p in answer.retrieval.passages):
            return "document_gone"  # deleted since it was retrieved
        now = self._clock()
        cached = CachedAnswer(
            request_id=answer.request_id,
            expert=answer.expert,
            question=question,
            text=answer.text,
            upstream_model=answer.upstream_model,
            usage=answer.usage,
            passages=tuple(
                CachedPassage(
                    number=p.number, chunk_id=p.chunk_id, document_id=p.document_id, domain=p.domain,
                    title=p.title, source=p.source, location=p.location, snippet=p.snippet, score=p.score,
                    groups=groups[p.document_id],
                )
                for p in answer.retrieval.passages
            ),
            domains=answer.retrieval.domains,
            index_versions=answer.retrieval.index_versions,
            grounding=None if answer.grounding is None else dict(answer.grounding),
            stored_at=now,
            expires_at=now + spec.cache.ttl_s,
        )  # fmt: skip
        try:
            variant = acl_variant(p.groups for p in cached.passages)
            await self._store.put(lookup.scope, lookup.text_key, variant, lookup.vector, cached, spec.cache.max_entries)
        except RedisError as exc:
            log.warning("response cache unavailable for %s: %s", answer.expert, exc)
            return "store_error"
        return None

    async def _groups(self, document_ids: set[int]) -> dict[int, frozenset[str]]:
        """The groups each document is restricted to now (empty: everyone)."""
        if not document_ids:
            return {}
        async with self._db.read() as conn:
            rows = await conn.execute(select(Document.id, Document.groups).where(Document.id.in_(document_ids)))
            return {int(doc): frozenset(g or ()) for doc, g in rows}


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
