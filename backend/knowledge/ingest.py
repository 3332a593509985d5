"""Ingestion: files -> documents and chunks in SQL (service: flushes, never commits).

One call of :meth:`IngestionService.ingest` handles a batch for one domain in three
phases, so that a bad file never leaves anything half-written:

1. read and check every file (size, type, encoding, parse, chunk) — a file that fails
   becomes a ``failed`` result with a stable error code, the others go on;
2. embed the chunks of every new or changed file (batched across files) and score
   them with the documents' safety scanner on those vectors (backend/knowledge/safety.py);
3. write: replace each changed document's chunks, add new documents, update groups.

Phase 3 only touches rows; any database error there propagates and the caller's
transaction rolls the whole batch back. An unchanged file (same SHA-256 and groups) is
a no-op; the same content under a second name in the domain is refused as a duplicate.
The index is not touched here: the caller publishes a new index version after commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import Document, DocumentChunk, utcnow
from backend.knowledge.safety import ChunkSafety, DocumentScanner
from backend.knowledge.types import FileInput, FileResult, FileStatus, IngestReport
from retrieval.chunking import ChunkConfig, chunk_document
from retrieval.embedding import Embedder, embed
from retrieval.errors import DocumentError, DocumentTooLarge, EmbeddingError, MissingFile
from retrieval.loaders import load_document, media_type_for
from retrieval.types import Chunk

# (phase, done, total, detail): phases are "read" (files) and "embed" (chunks).
Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_file_bytes: int
    chunking: ChunkConfig = field(default_factory=ChunkConfig)


@dataclass(frozen=True, slots=True)
class _Prepared:
    position: int
    item: FileInput
    digest: str
    size: int
    title: str
    media_type: str
    chunks: tuple[Chunk, ...]
    existing: Document | None


def _no_progress(phase: str, done: int, total: int, detail: str) -> None:
    return None


class IngestionService:
    def __init__(
        self,
        session: AsyncSession,
        embedder: Embedder,
        limits: IngestLimits,
        scanner: DocumentScanner | None = None,
    ) -> None:
        self._session = session
        self._embedder = embedder
        self._limits = limits
        self._scanner = scanner  # None: chunks are stored unscored

    async def ingest(
        self,
        domain: str,
        inputs: Sequence[FileInput],
        *,
        user_id: int | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Ingest ``inputs`` into ``domain``; one FileResult per input, in input order."""
        report = progress or _no_progress
        existing = await self._documents(domain, [i.source for i in inputs])
        results: dict[int, FileResult] = {}
        prepared: list[_Prepared] = []
        regroup: list[tuple[int, Document, FileInput]] = []
        batch_hashes: dict[str, str] = {}
        seen: set[str] = set()

        for position, item in enumerate(inputs):
            report("read", position, len(inputs), item.source)
            if item.source in seen:
                results[position] = FileResult(
                    item.source, FileStatus.DUPLICATE, message="listed more than once in this batch"
                )
                continue
            seen.add(item.source)
            try:
                data = await anyio.to_thread.run_sync(self._read, item)
            except DocumentError as exc:
                results[position] = _failed(item.source, exc)
                continue
            digest = hashlib.sha256(data).hexdigest()
            doc = existing.get(item.source)
            if doc is not None and doc.content_hash == digest:
                if frozenset(doc.groups) == item.groups:
                    results[position] = FileResult(item.source, FileStatus.UNCHANGED, doc.id, doc.chunk_count)
                else:
                    regroup.append((position, doc, item))
                continue
            twin = batch_hashes.get(digest) or await self._same_content(domain, digest, item.source)
            if twin is not None:
                results[position] = FileResult(
                    item.source,
                    FileStatus.DUPLICATE,
                    error_code="duplicate_content",
                    message=f"same content as {twin}",
                )
                continue
            batch_hashes[digest] = item.source
            try:
                title, media_type, chunks = await anyio.to_thread.run_sync(self._parse, item, data)
            except DocumentError as exc:
                results[position] = _failed(item.source, exc)
                continue
            prepared.append(_Prepared(position, item, digest, len(data), title, media_type, chunks, doc))
        report("read", len(inputs), len(inputs), "")

        vectors = np.zeros((0, self._embedder.dim), dtype=np.float32)
        texts = [c.embed_text for p in prepared for c in p.chunks]
        scanned: list[ChunkSafety | None] = [None] * len(texts)
        if texts:
            try:
                vectors = await anyio.to_thread.run_sync(self._embed, texts, report)
                if self._scanner is not None:
                    scanned = [*await anyio.to_thread.run_sync(self._scan, self._scanner, texts, vectors)]
            except EmbeddingError as exc:
                for p in prepared:
                    results[p.position] = FileResult(
                        p.item.source,
                        FileStatus.FAILED,
                        error_code="embedding_failed",
                        message=str(exc),
                    )
                prepared = []

        now = utcnow()
        for position, doc, item in regroup:
            doc.groups = sorted(item.groups)
            doc.updated_at = now
            results[position] = FileResult(item.source, FileStatus.REGROUPED, doc.id, doc.chunk_count)
        offset = 0
        for p in prepared:
            rows = vectors[offset : offset + len(p.chunks)]
            scores = scanned[offset : offset + len(p.chunks)]
            offset += len(p.chunks)
            doc_id = await self._write(domain, p, rows, scores, user_id)
            status = FileStatus.UPDATED if p.existing is not None else FileStatus.ADDED
            results[p.position] = FileResult(p.item.source, status, doc_id, len(p.chunks))
        await self._session.flush()
        return IngestReport(domain, tuple(results[i] for i in range(len(inputs))))

    # -- phase 1 (worker threads) -----------------------------------------------------
    def _read(self, item: FileInput) -> bytes:
        media_type_for(item.path.name)  # refuse unknown types before reading anything
        try:
            size = item.path.stat().st_size
            if size > self._limits.max_file_bytes:
                raise DocumentTooLarge(f"{size} bytes is over the limit of {self._limits.max_file_bytes} bytes")
            return item.path.read_bytes()
        except OSError as exc:
            raise MissingFile(f"cannot read {item.source}: {exc.strerror or exc}") from None

    def _parse(self, item: FileInput, data: bytes) -> tuple[str, str, tuple[Chunk, ...]]:
        doc = load_document(data, item.path.name, max_bytes=self._limits.max_file_bytes)
        chunks = chunk_document(doc, self._limits.chunking)
        return doc.title, doc.media_type, tuple(chunks)

    def _embed(self, texts: list[str], report: Progress) -> np.ndarray:
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            report("embed", done, len(texts), "")

        report("embed", 0, len(texts), "")
        return embed(self._embedder, texts, on_batch=step)

    def _scan(self, scanner: DocumentScanner, texts: list[str], vectors: np.ndarray) -> list[ChunkSafety]:
        # Hidden forms (decoded base64, ...) are the only texts embedded again; rare.
        return scanner.scan(texts, vectors, lambda forms: embed(self._embedder, forms))

    # -- phase 3 -------------------------------------------------------------------------
    async def _write(
        self,
        domain: str,
        p: _Prepared,
        vectors: np.ndarray,
        scores: Sequence[ChunkSafety | None],
        user_id: int | None,
    ) -> int:
        now = utcnow()
        doc = p.existing
        if doc is None:
            doc = Document(
                domain=domain,
                source=p.item.source,
                created_by=user_id,
                created_at=now,
            )
            self._session.add(doc)
        else:
            await self._session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == doc.id))
        doc.title = p.title[:500]
        doc.media_type = p.media_type
        doc.content_hash = p.digest
        doc.size_bytes = p.size
        doc.groups = sorted(p.item.groups)
        doc.chunk_count = len(p.chunks)
        doc.updated_at = now
        known = [s for s in scores if s is not None]
        doc.safety = self._scanner.summary(known).to_json() if self._scanner is not None and known else None
        # A release from quarantine was for the content an admin saw, not this one.
        doc.safety_released_at = None
        doc.safety_released_by = None
        await self._session.flush()
        embedder = self._embedder.name
        self._session.add_all(
            [
                DocumentChunk(
                    document_id=doc.id,
                    domain=domain,
                    ordinal=chunk.ordinal,
                    title_path=list(chunk.title_path),
                    text=chunk.text,
                    start_line=chunk.location.start_line,
                    end_line=chunk.location.end_line,
                    page=chunk.location.page,
                    embedding=np.asarray(vector, dtype="<f4").tobytes(),
                    embedder=embedder,
                    safety_category=score.category if score is not None else None,
                    safety_score=score.score if score is not None else None,
                    safety_model=self._scanner.version if score is not None and self._scanner is not None else None,
                )
                for chunk, vector, score in zip(p.chunks, vectors, scores, strict=True)
            ]
        )
        return doc.id

    # -- queries -------------------------------------------------------------------------
    async def _documents(self, domain: str, sources: Sequence[str]) -> dict[str, Document]:
        found: dict[str, Document] = {}
        unique = sorted(set(sources))
        for start in range(0, len(unique), 500):  # stay under bind-parameter limits
            rows = await self._session.scalars(
                select(Document).where(Document.domain == domain, Document.source.in_(unique[start : start + 500]))
            )
            found.update({d.source: d for d in rows})
        return found

    async def _same_content(self, domain: str, digest: str, source: str) -> str | None:
        return await self._session.scalar(
            select(Document.source)
            .where(
                Document.domain == domain,
                Document.content_hash == digest,
                Document.source != source,
            )
            .limit(1)
        )


def _failed(source: str, exc: DocumentError) -> FileResult:
    return FileResult(source, FileStatus.FAILED, error_code=exc.code, message=exc.message)
