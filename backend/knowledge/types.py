"""Frozen values of the knowledge package (no ORM objects cross its boundary)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from experts.types import Passage


class FileStatus(StrEnum):
    """What ingestion did with one file (stable strings: they are stored and returned)."""

    ADDED = "added"
    UPDATED = "updated"  # content changed: old chunks replaced
    REGROUPED = "regrouped"  # same content, new groups: chunks kept, ACL changed
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    DUPLICATE = "duplicate"  # same content as another document of the domain: not stored
    SKIPPED = "skipped"  # passed over in a folder walk (unsupported type)
    FAILED = "failed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every file ingested (or unchanged)
    PARTIAL = "partial"  # some files failed, the rest are in
    FAILED = "failed"  # nothing could be ingested, or the job itself failed


@dataclass(frozen=True, slots=True)
class FileInput:
    """One file to ingest: its source name in the domain, where it is, who may see it."""

    source: str
    path: Path
    groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class FileResult:
    source: str
    status: FileStatus
    document_id: int | None = None
    chunks: int = 0
    error_code: str | None = None
    message: str | None = None

    @property
    def changed(self) -> bool:
        return self.status in (
            FileStatus.ADDED,
            FileStatus.UPDATED,
            FileStatus.REGROUPED,
            FileStatus.DELETED,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "status": str(self.status),
            "document_id": self.document_id,
            "chunks": self.chunks,
            "error_code": self.error_code,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> FileResult:
        doc = raw.get("document_id")
        chunks = raw.get("chunks", 0)
        code = raw.get("error_code")
        message = raw.get("message")
        return cls(
            source=str(raw["source"]),
            status=FileStatus(str(raw["status"])),
            document_id=doc if isinstance(doc, int) else None,
            chunks=chunks if isinstance(chunks, int) else 0,
            error_code=code if isinstance(code, str) else None,
            message=message if isinstance(message, str) else None,
        )


@dataclass(frozen=True, slots=True)
class IngestReport:
    domain: str
    results: tuple[FileResult, ...]

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status is FileStatus.FAILED for r in self.results)

    def count(self, status: FileStatus) -> int:
        return sum(r.status is status for r in self.results)


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    domain: str
    status: JobStatus
    groups: tuple[str, ...]
    total_files: int
    done_files: int
    results: tuple[FileResult, ...]
    error: str | None
    index_version: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class DocumentSafety:
    """The safety scan of a document's chunks (backend/knowledge/safety.py): how many
    scored at or over ``threshold``, and the category and score of the highest-scoring
    chunk (``category`` None: no chunks), by safety model version ``model``."""

    flagged_chunks: int
    category: str | None
    score: float
    model: str
    threshold: float

    @property
    def flagged(self) -> bool:
        return self.flagged_chunks > 0

    def to_json(self) -> dict[str, object]:
        return {
            "flagged_chunks": self.flagged_chunks,
            "category": self.category,
            "score": self.score,
            "model": self.model,
            "threshold": self.threshold,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object] | None) -> DocumentSafety | None:
        """The stored summary (None: not scanned yet)."""
        if not raw:
            return None
        category, flagged = raw.get("category"), raw.get("flagged_chunks")
        score, threshold = raw.get("score"), raw.get("threshold")
        return cls(
            flagged_chunks=flagged if isinstance(flagged, int) else 0,
            category=category if isinstance(category, str) else None,
            score=float(score) if isinstance(score, int | float) else 0.0,
            model=str(raw.get("model", "")),
            threshold=float(threshold) if isinstance(threshold, int | float) else 0.0,
        )


@dataclass(frozen=True, slots=True)
class DocumentView:
    id: int
    domain: str
    source: str
    title: str
    media_type: str
    groups: tuple[str, ...]
    chunk_count: int
    size_bytes: int
    content_hash: str
    created_at: datetime
    updated_at: datetime
    safety: DocumentSafety | None = None  # None: not scanned (yet)
    quarantined: bool = False  # left out of the index until an admin releases it


@dataclass(frozen=True, slots=True)
class DocumentListing:
    """One page of the documents a caller may see, by id; ``next_cursor`` None on the
    last page; ``total`` counts them on every page."""

    documents: tuple[DocumentView, ...]
    next_cursor: str | None
    total: int


@dataclass(frozen=True, slots=True)
class DocumentSection:
    """One stored chunk of a document, in reading order: ``title_path`` from the
    document title to its heading, ``location`` ("lines 12-30", "page 3"; "" unknown)."""

    ordinal: int
    title_path: tuple[str, ...]
    location: str
    text: str


@dataclass(frozen=True, slots=True)
class DocumentText:
    """A whole document as it was ingested: its sections (chunks never overlap, so read
    in order they are its text, as the loader parsed it)."""

    document: DocumentView
    sections: tuple[DocumentSection, ...]


@dataclass(frozen=True, slots=True)
class RetrievedPassage:
    """A chunk retrieved for one request, numbered as the answer cites it."""

    number: int
    chunk_id: int
    document_id: int
    domain: str
    title: str  # the chunk's title path, "Document title > Section"
    source: str
    location: str
    text: str
    snippet: str
    score: float
    # The category the documents' safety scan flagged this chunk for (None: not
    # flagged): the passage reaches the prompt fenced as quoted data.
    flagged: str | None = None

    def as_passage(self) -> Passage:
        where = f"{self.source}, {self.location}" if self.location else self.source
        return Passage(
            number=self.number, title=self.title, source=where, text=self.text, quoted=self.flagged is not None
        )


@dataclass(frozen=True, slots=True)
class Retrieval:
    """Stage 4 output: the passages, and what was searched (for the route record)."""

    passages: tuple[RetrievedPassage, ...] = ()
    domains: tuple[str, ...] = ()
    ms: float = 0.0
    degraded: str | None = None  # why retrieval was skipped, when it failed
    index_versions: tuple[tuple[str, str], ...] = ()  # (domain, version) searched
    dropped: int = 0  # flagged passages left out by the domain's ``drop`` policy

    def keep(self, passages: int | None) -> Retrieval:
        """The first ``passages`` passages only (None: all): those an expert's prompt held
        after it was fitted to the model's context window (experts/budget.py)."""
        if passages is None or passages >= len(self.passages):
            return self
        return replace(self, passages=self.passages[:passages])

    def record(self) -> dict[str, object]:
        """What the route record and the audit event keep: ids and versions, never text."""
        return {
            "domains": list(self.domains),
            "chunk_ids": [p.chunk_id for p in self.passages],
            "index_versions": dict(self.index_versions),
            "ms": self.ms,
            "degraded": self.degraded,
            "safety": {
                "dropped": self.dropped,
                "fenced": [p.chunk_id for p in self.passages if p.flagged is not None],
            },
        }


NO_RETRIEVAL = Retrieval()  # nothing searched (the generalist, or knowledge disabled)
