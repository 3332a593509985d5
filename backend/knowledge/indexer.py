"""Building a domain's index from SQL and publishing it as a new version.

SQL is the source of truth: the index is rebuilt from the chunks table (with the
vectors stored there; rows embedded by another model, or without a vector, are
re-embedded and written back). The manifest's ``source_fingerprint`` names the SQL
state it was built from, so a reader can tell a stale index from a current one.

Publishing holds a per-domain lock (an asyncio lock in-process, flock across
processes) from reading SQL to swapping CURRENT, so versions go live in the order
their SQL snapshots were taken. :meth:`IndexPublisher.current_or_rebuilt` checks under
that lock whether another process has just published the index it was about to build:
API processes starting together on a missing or stale index build it once, not once each.

With a documents' safety scanner (backend/knowledge/safety.py), a build also scores the
chunks its safety model version has not scored (rows from before the scan, or from an
older model) and writes the scores back, and leaves out the documents its domain's
``quarantine`` policy holds back. The scanner's version and the quarantined documents
are part of the fingerprint: a new safety model, a release or a policy change makes the
index stale.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import anyio
import numpy as np
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import Document, DocumentChunk
from backend.db.session import Database
from backend.knowledge.safety import ChunkSafety, DocumentScanner, is_quarantined
from backend.knowledge.types import DocumentSafety
from retrieval.embedding import Embedder, embed, normalize
from retrieval.errors import IndexUnavailable
from retrieval.index import DomainIndex, IndexConfig
from retrieval.store import IndexStore, LoadedIndex, Manifest
from retrieval.types import IndexEntry

log = logging.getLogger(__name__)


def fingerprint_of(embedder: str, docs: Iterable[tuple[int, str, list[str]]]) -> str:
    """Identity of a domain's SQL state: (document id, content hash, groups) per document."""
    digest = hashlib.sha256(embedder.encode())
    for doc_id, content_hash, groups in sorted(docs):
        digest.update(json.dumps([doc_id, content_hash, sorted(groups)]).encode())
    return digest.hexdigest()


class IndexPublisher:
    def __init__(
        self,
        db: Database,
        store: IndexStore,
        embedder: Embedder,
        config: IndexConfig,
        scanner: DocumentScanner | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._embedder = embedder
        self.config = config
        self._scanner = scanner
        # What the fingerprint is seeded with: the embedder, and the safety model whose
        # scores (and quarantine decisions) the index reflects.
        self._seed = embedder.name
        if scanner is not None:
            self._seed += f"|safety:{scanner.version}@{scanner.threshold}"
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def store(self) -> IndexStore:
        return self._store

    async def fingerprint(self, session: AsyncSession, domain: str) -> str:
        rows = await session.execute(
            select(
                Document.id, Document.content_hash, Document.groups, Document.safety, Document.safety_released_at
            ).where(Document.domain == domain)
        )
        return fingerprint_of(
            self._seed, ((r[0], r[1], r[2]) for r in rows if not self._quarantined(domain, r[3], r[4]))
        )

    def _quarantined(self, domain: str, summary: dict[str, object] | None, released: object | None) -> bool:
        return self._scanner is not None and is_quarantined(self._scanner.policy(domain), summary, released)

    @asynccontextmanager
    async def _locked(self, domain: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(domain, asyncio.Lock())
        async with lock:
            cm = self._store.lock(domain)
            await anyio.to_thread.run_sync(cm.__enter__)
            try:
                yield
            finally:
                cm.__exit__(None, None, None)

    async def publish(self, domain: str) -> Manifest:
        """Rebuild ``domain``'s index from SQL and make it current. Returns its manifest."""
        async with self._locked(domain):
            return await self._publish_locked(domain)

    async def current_or_rebuilt(self, domain: str) -> LoadedIndex:
        """``domain``'s current index when it loads and was built from SQL as it is now
        (another process may have published it while this one waited for the lock);
        else a new version, built and published now. Raises IndexUnavailable only if
        the version just built cannot be loaded."""
        async with self._locked(domain):
            try:
                loaded = await anyio.to_thread.run_sync(self.load, domain, None)
            except IndexUnavailable:
                loaded = None
            if loaded is not None:
                async with self._db.session() as session:
                    if loaded.manifest.source_fingerprint == await self.fingerprint(session, domain):
                        return loaded
            manifest = await self._publish_locked(domain)
            return await anyio.to_thread.run_sync(self.load, domain, manifest.version)

    def load(self, domain: str, version: str | None) -> LoadedIndex:
        """Load ``domain``'s ``version`` (None: the current one) for this publisher's
        embedder and index configuration. Blocking; raises IndexUnavailable."""
        return self._store.load(
            domain, embedder=self._embedder.name, dim=self._embedder.dim, config=self.config, version=version
        )

    async def _publish_locked(self, domain: str) -> Manifest:
        """Build ``domain``'s index from SQL and publish it (the caller holds the lock)."""
        started = time.perf_counter()
        async with self._db.transaction() as session:
            entries, vectors, fingerprint = await self._snapshot(session, domain)
        index = await anyio.to_thread.run_sync(DomainIndex.build, entries, vectors, self.config)
        build_s = time.perf_counter() - started
        manifest = await anyio.to_thread.run_sync(
            lambda: self._store.publish(
                domain,
                index,
                embedder=self._embedder.name,
                source_fingerprint=fingerprint,
                build_seconds=build_s,
                params={
                    "hnsw_threshold": self.config.hnsw_threshold,
                    "hnsw_m": self.config.hnsw_m,
                    "fusion": str(self.config.fusion.method),
                    "dense_weight": self.config.fusion.dense_weight,
                },
            )
        )
        log.info(
            "published index %s/%s: %d chunks (%s) in %.2fs",
            domain, manifest.version, manifest.count, manifest.kind, build_s,
        )  # fmt: skip
        return manifest

    async def _snapshot(self, session: AsyncSession, domain: str) -> tuple[list[IndexEntry], np.ndarray, str]:
        """Entries, vectors and fingerprint of one consistent read (one SELECT)."""
        rows = (
            await session.execute(
                select(
                    DocumentChunk.id,
                    DocumentChunk.title_path,
                    DocumentChunk.text,
                    DocumentChunk.embedding,
                    DocumentChunk.embedder,
                    Document.id,
                    Document.content_hash,
                    Document.groups,
                    DocumentChunk.safety_model,
                )
                .join(Document, Document.id == DocumentChunk.document_id)
                .where(DocumentChunk.domain == domain)
                .order_by(DocumentChunk.id)
            )
        ).all()
        dim = self._embedder.dim
        entries: list[IndexEntry] = []
        vectors = np.zeros((len(rows), dim), dtype=np.float32)
        stale: list[int] = []
        docs: dict[int, tuple[int, str, list[str]]] = {}
        unscored: list[int] = []
        for i, (chunk_id, path, text, blob, embedder, doc_id, digest, groups, scored_by) in enumerate(rows):
            embed_text = f"{' > '.join(path)}\n{text}" if path else text
            entries.append(IndexEntry(chunk_id, embed_text, frozenset(groups)))
            docs[doc_id] = (doc_id, digest, list(groups))
            if embedder == self._embedder.name and blob is not None and len(blob) == dim * 4:
                vectors[i] = np.frombuffer(blob, dtype="<f4")
            else:
                stale.append(i)
            if self._scanner is not None and scored_by != self._scanner.version:
                unscored.append(i)
        if stale:
            log.info("re-embedding %d chunks of %s (missing or other model)", len(stale), domain)
            fresh = await anyio.to_thread.run_sync(lambda: embed(self._embedder, [entries[i].text for i in stale]))
            for i, vector in zip(stale, fresh, strict=True):
                vectors[i] = vector
                await session.execute(
                    update(DocumentChunk)
                    .where(DocumentChunk.id == entries[i].chunk_id)
                    .values(embedding=vector.astype("<f4").tobytes(), embedder=self._embedder.name)
                )
        if len(rows):
            vectors = normalize(vectors)
        if self._scanner is not None:
            doc_of = [row[5] for row in rows]
            held = await self._scan(session, domain, self._scanner, entries, vectors, unscored, doc_of)
            if held:
                keep = [i for i, row in enumerate(rows) if row[5] not in held]
                entries, vectors = [entries[i] for i in keep], vectors[keep]
                docs = {d: v for d, v in docs.items() if d not in held}
        return entries, vectors, fingerprint_of(self._seed, docs.values())

    async def _scan(
        self,
        session: AsyncSession,
        domain: str,
        scanner: DocumentScanner,
        entries: list[IndexEntry],
        vectors: np.ndarray,
        unscored: list[int],
        doc_of: list[int],
    ) -> set[int]:
        """Score the ``unscored`` entries (``doc_of``: each entry's document id), update
        their rows and the summaries of their documents (and of any summed up at another
        threshold), and return the ids of the documents the domain's policy holds back."""
        touched = {doc_of[i] for i in unscored}
        if unscored:
            log.info("safety-scanning %d chunks of %s (unscored, or by another model)", len(unscored), domain)
            texts = [entries[i].text for i in unscored]
            found = await anyio.to_thread.run_sync(
                lambda: scanner.scan(texts, vectors[unscored], lambda forms: embed(self._embedder, forms))
            )
            for i, verdict in zip(unscored, found, strict=True):
                await session.execute(
                    update(DocumentChunk)
                    .where(DocumentChunk.id == entries[i].chunk_id)
                    .values(safety_category=verdict.category, safety_score=verdict.score, safety_model=scanner.version)
                )
            await session.flush()
        held: set[int] = set()
        for doc in await session.scalars(select(Document).where(Document.domain == domain)):
            summary = DocumentSafety.from_json(doc.safety)
            if doc.id in touched or (summary is not None and summary.threshold != scanner.threshold):
                scores = await session.execute(
                    select(DocumentChunk.safety_category, DocumentChunk.safety_score).where(
                        DocumentChunk.document_id == doc.id, DocumentChunk.safety_score.is_not(None)
                    )
                )
                known = [ChunkSafety(c, s) for c, s in scores if c is not None and s is not None]
                doc.safety = scanner.summary(known).to_json()
            if self._quarantined(domain, doc.safety, doc.safety_released_at):
                held.add(doc.id)
        await session.flush()
        return held
