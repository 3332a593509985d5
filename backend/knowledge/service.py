"""KnowledgeService: the loaded indexes of a process, hot reload, and retrieval.

Each domain's index is loaded once from its CURRENT version and swapped (one
reference assignment) when CURRENT changes: checked at most every ``reload_s``
seconds on use, and at once after a publish by this process. A missing, corrupt,
mismatched or stale index (its manifest's SQL fingerprint differs from SQL) is
rebuilt from SQL the first time the domain is used, or at startup by :meth:`start`.

Retrieval is ACL-filtered twice: inside the index search (the caller's groups mask
rows) and again against the documents' groups in SQL while the passages are read,
so neither a stale index nor a bug in one layer can hand out a chunk the caller may
not see. Passage text always comes from SQL, never from the index.

A chunk the documents' safety scan flagged (backend/knowledge/safety.py) is fenced or
dropped by its domain's policy while the passages are read; under ``quarantine`` a held
document's chunks are dropped here too, should a stale index still hold them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import anyio
from sqlalchemy import select

from backend.db.models import Document, DocumentChunk
from backend.db.session import Database
from backend.guard.output import scrub
from backend.knowledge.indexer import IndexPublisher
from backend.knowledge.safety import DocumentScanner, is_quarantined
from backend.knowledge.types import Retrieval, RetrievedPassage
from retrieval.acl import visible
from retrieval.embedding import Embedder, Vectors, embed, normalize
from retrieval.errors import IndexUnavailable, RetrievalError
from retrieval.snippets import snippet
from retrieval.store import LoadedIndex
from retrieval.types import Hit, Location

log = logging.getLogger(__name__)

# Up to this many chunks over the searched indexes, the search runs on the event loop:
# ~0.1 ms on the sample corpus, ~0.6 ms at 1,000 chunks and ~0.8 ms at 2,500 (hybrid
# p50 on a loaded day, bench/results/retrieval_latency.json), where the hand-off to a
# worker thread and back costs ~0.3 ms and a GIL wait under load. Larger indexes are
# searched in a worker thread.
INLINE_SEARCH_CHUNKS = 2000


@dataclass(frozen=True, slots=True)
class DomainQuery:
    """One index to search and the weight its scores get when merged with others."""

    domain: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True, eq=False)
class QueryVector:
    """The query's embedding, already made by ``model`` (the router's encoder, stage 3).

    Retrieval uses it instead of embedding the query again when its own embedder is the
    same model; otherwise it is ignored.
    """

    model: str
    vector: Vectors


class KnowledgeService:
    def __init__(
        self,
        db: Database,
        publisher: IndexPublisher,
        embedder: Embedder,
        domains: Sequence[str],
        *,
        reload_s: float = 2.0,
        snippet_chars: int = 240,
        scanner: DocumentScanner | None = None,
    ) -> None:
        self._db = db
        self._scanner = scanner
        self._publisher = publisher
        self._store = publisher.store
        self._embedder = embedder
        self.domains = tuple(dict.fromkeys(domains))
        self._reload_s = reload_s
        self._snippet_chars = snippet_chars
        self._loaded: dict[str, LoadedIndex] = {}
        self._checked: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- index lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Load (or rebuild) every domain's index; call once at startup."""
        for domain in self.domains:
            await self.ensure(domain)

    async def ensure(self, domain: str) -> LoadedIndex:
        """The domain's index, loaded; rebuilt from SQL when unusable or stale."""
        lock = self._locks.setdefault(domain, asyncio.Lock())
        async with lock:
            loaded = self._loaded.get(domain)
            # The pointer may be a SQL row (scale-out): read it off the event loop.
            live = await anyio.to_thread.run_sync(self._store.current_version, domain)
            if loaded is None or loaded.manifest.version != live:
                try:
                    loaded = await anyio.to_thread.run_sync(self._publisher.load, domain, None)
                except IndexUnavailable as exc:
                    log.warning("index %s unusable (%s); rebuilding from SQL", domain, exc)
                    loaded = None
            if loaded is not None:
                async with self._db.session() as session:
                    current = await self._publisher.fingerprint(session, domain)
                if loaded.manifest.source_fingerprint != current:
                    log.info("index %s is behind SQL; rebuilding", domain)
                    loaded = None
            if loaded is None:  # built once however many processes find it so at once
                loaded = await self._publisher.current_or_rebuilt(domain)
            self._loaded[domain] = loaded
            self._checked[domain] = time.monotonic()
            return loaded

    async def publish(self, domain: str) -> str:
        """Rebuild ``domain`` from SQL, make it current here at once; returns the version."""
        manifest = await self._publisher.publish(domain)
        await self.reload(domain)
        return manifest.version

    async def reload(self, domain: str) -> None:
        """Pick up the domain's CURRENT version now (no-op when already loaded)."""
        self._checked.pop(domain, None)
        await self._index(domain)

    def loaded_version(self, domain: str) -> str | None:
        loaded = self._loaded.get(domain)
        return loaded.manifest.version if loaded else None

    async def _index(self, domain: str) -> LoadedIndex:
        loaded = self._loaded.get(domain)
        if loaded is None:
            return await self.ensure(domain)
        now = time.monotonic()
        if now - self._checked.get(domain, 0.0) < self._reload_s:
            return loaded
        self._checked[domain] = now
        version = await anyio.to_thread.run_sync(self._store.current_version, domain)
        if version is None or version == loaded.manifest.version:
            return loaded
        try:
            fresh = await anyio.to_thread.run_sync(self._publisher.load, domain, version)
        except IndexUnavailable as exc:
            # Keep answering from the version we have; the publisher's next run fixes it.
            log.warning("cannot load index %s/%s (%s); keeping %s",
                        domain, version, exc, loaded.manifest.version)  # fmt: skip
            return loaded
        self._loaded[domain] = fresh
        log.info("index %s now at %s (%d chunks)", domain, version, fresh.manifest.count)
        return fresh

    # -- retrieval -------------------------------------------------------------------------
    async def retrieve(
        self,
        query: str,
        targets: Sequence[DomainQuery],
        groups: frozenset[str],
        k: int,
        *,
        vector: QueryVector | None = None,
    ) -> Retrieval:
        """The ``k`` best passages over ``targets`` that a caller in ``groups`` may see.

        ``vector``: the query already embedded (see :class:`QueryVector`). Scores of
        several domains are merged after multiplying by each target's weight.
        Passages are numbered from 1 in score order. A retrieval failure (an index that
        cannot be built, an embedder error) degrades to no passages, with the reason
        in ``Retrieval.degraded``; it never fails the request.
        """
        started = time.perf_counter()
        names = tuple(t.domain for t in targets if t.domain in self.domains)
        if k <= 0 or not names or not query.strip():
            return Retrieval(domains=names)
        try:
            indexes = [(t, await self._index(t.domain)) for t in targets if t.domain in names]
            indexes = [(t, li) for t, li in indexes if len(li.index)]
            if not indexes:
                return Retrieval(domains=names, ms=_ms(started))
            if vector is not None and vector.model == self._embedder.name:
                row = normalize(vector.vector.reshape(1, -1))[0]
                if sum(len(li.index) for _, li in indexes) <= INLINE_SEARCH_CHUNKS:
                    hits = self._search(query, row, indexes, groups, k)
                else:
                    hits = await anyio.to_thread.run_sync(self._search, query, row, indexes, groups, k)
            else:
                hits = await anyio.to_thread.run_sync(self._embed_and_search, query, indexes, groups, k)
        except RetrievalError as exc:
            log.warning("retrieval over %s failed: %s", ", ".join(names), exc)
            return Retrieval(domains=names, ms=_ms(started), degraded=str(exc))
        passages, dropped = await self._passages(query, hits, groups, k)
        versions = tuple((t.domain, li.manifest.version) for t, li in indexes)
        return Retrieval(passages=passages, domains=names, ms=_ms(started), index_versions=versions, dropped=dropped)

    def _embed_and_search(
        self,
        query: str,
        indexes: list[tuple[DomainQuery, LoadedIndex]],
        groups: frozenset[str],
        k: int,
    ) -> list[tuple[float, str, Hit]]:
        return self._search(query, embed(self._embedder, [query])[0], indexes, groups, k)

    def _search(
        self,
        query: str,
        vector: Vectors,
        indexes: list[tuple[DomainQuery, LoadedIndex]],
        groups: frozenset[str],
        k: int,
    ) -> list[tuple[float, str, Hit]]:
        merged: list[tuple[float, str, Hit]] = []
        for target, loaded in indexes:
            for hit in loaded.index.search(vector, query, groups, k):
                merged.append((hit.score * target.weight, target.domain, hit))
        merged.sort(key=lambda item: (-item[0], item[2].chunk_id))
        return merged

    async def _passages(
        self, query: str, hits: list[tuple[float, str, Hit]], groups: frozenset[str], k: int
    ) -> tuple[tuple[RetrievedPassage, ...], int]:
        """The passages in score order (at most ``k``), and how many flagged ones the
        domains' safety policy dropped."""
        if not hits:
            return (), 0
        ids = [hit.chunk_id for _, _, hit in hits]
        async with self._db.read() as conn:  # one statement: no transaction around it
            rows = await conn.execute(
                select(
                    DocumentChunk.id,
                    DocumentChunk.domain,
                    DocumentChunk.title_path,
                    DocumentChunk.text,
                    DocumentChunk.start_line,
                    DocumentChunk.end_line,
                    DocumentChunk.page,
                    Document.id,
                    Document.source,
                    Document.groups,
                    DocumentChunk.safety_category,
                    DocumentChunk.safety_score,
                    Document.safety,
                    Document.safety_released_at,
                )
                .join(Document, Document.id == DocumentChunk.document_id)
                .where(DocumentChunk.id.in_(ids))
            )
            found = {row[0]: row for row in rows}
        out: list[RetrievedPassage] = []
        dropped = 0
        for score, domain, hit in hits:
            row = found.get(hit.chunk_id)
            # Gone since the index was built, moved, or (re)restricted: skip it.
            if row is None or row[1] != domain or not visible(frozenset(row[9]), groups):
                continue
            _, _, path, text, start, end, page, doc_id, source, _, category, safety, summary, released = row
            flagged = None
            if self._scanner is not None:
                policy = self._scanner.policy(domain)
                if is_quarantined(policy, summary, released):
                    dropped += 1
                    continue
                if self._scanner.flagged(safety):
                    if policy == "drop":
                        dropped += 1
                        continue
                    flagged = category  # fence (and a released document under quarantine)
            out.append(
                RetrievedPassage(
                    number=len(out) + 1,
                    chunk_id=hit.chunk_id,
                    document_id=doc_id,
                    domain=domain,
                    title=" > ".join(path),
                    source=source,
                    location=str(Location(start_line=start, end_line=end, page=page)),
                    text=text,
                    # Shown to the caller as is: no secret of the document leaves in it
                    # (cut from the scrubbed text: a cut PEM block no longer looks like one).
                    snippet=snippet(_scrubbed(text), query, self._snippet_chars),
                    score=round(score, 4),
                    flagged=flagged,
                )
            )
            if len(out) == k:
                break
        return tuple(out), dropped


@lru_cache(maxsize=1024)
def _scrubbed(text: str) -> str:
    """A passage's text without its secrets, for its snippet. Remembered by the text: the
    same chunks come back request after request, and scanning each one again was 2.8% of
    a full request's CPU under load (docs/load.md, issue 24, twelfth session)."""
    return scrub(text, "")[0]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
