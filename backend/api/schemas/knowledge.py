"""API schemas for /api/v1/documents and /api/v1/ingest-jobs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from backend.api.schemas.paging import NextCursor
from backend.knowledge.types import DocumentText, DocumentView, FileResult, JobView


class DocumentSafetyOut(BaseModel):
    """The safety scan of a document's chunks (docs/safety.md, "Documents")."""

    flagged_chunks: int  # chunks scored at or over ``threshold``
    category: str | None  # the highest-scoring chunk's category (injection, jailbreak, extraction)
    score: float  # that chunk's calibrated score, 0..1
    model: str  # the safety model version that scored it
    threshold: float


class DocumentOut(BaseModel):
    id: int
    domain: str
    source: str
    title: str
    media_type: str
    groups: list[str]
    chunk_count: int
    size_bytes: int
    content_hash: str
    created_at: datetime
    updated_at: datetime
    safety: DocumentSafetyOut | None = None  # null: not scanned (yet)
    quarantined: bool = False  # held out of the index until an admin releases it

    @classmethod
    def of(cls, view: DocumentView) -> DocumentOut:
        # The view's fields are this model's, by name (tuples become lists).
        return cls.model_validate(view, from_attributes=True)


class DocumentPage(BaseModel):
    data: list[DocumentOut]
    next_cursor: NextCursor
    total: int = Field(description="every document the caller may see (in ``domain``, if given), on all pages")


class DocumentSectionOut(BaseModel):
    """One section (stored chunk) of a document, in reading order."""

    ordinal: int
    title_path: list[str]
    location: str | None  # "lines 12-30", "page 3"; null when unknown
    text: str


class DocumentTextOut(BaseModel):
    """The whole document as ingested: its sections in order (GET /documents/{id}/text)."""

    document: DocumentOut
    sections: list[DocumentSectionOut]

    @classmethod
    def of(cls, text: DocumentText) -> DocumentTextOut:
        return cls(
            document=DocumentOut.of(text.document),
            sections=[
                DocumentSectionOut(
                    ordinal=s.ordinal, title_path=list(s.title_path), location=s.location or None, text=s.text
                )
                for s in text.sections
            ],
        )


class DocumentReleased(BaseModel):
    document: DocumentOut
    index_version: str | None


class DocumentDeleted(BaseModel):
    id: int
    deleted: bool = True
    index_version: str | None


class FileResultOut(BaseModel):
    source: str
    status: str
    document_id: int | None
    chunks: int
    error_code: str | None
    message: str | None

    @classmethod
    def of(cls, result: FileResult) -> FileResultOut:
        return cls(
            source=result.source,
            status=str(result.status),
            document_id=result.document_id,
            chunks=result.chunks,
            error_code=result.error_code,
            message=result.message,
        )


class IngestJobOut(BaseModel):
    id: str
    domain: str
    status: str
    groups: list[str]
    total_files: int
    done_files: int
    results: list[FileResultOut]
    error: str | None
    index_version: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, view: JobView) -> IngestJobOut:
        return cls(
            id=view.id,
            domain=view.domain,
            status=str(view.status),
            groups=list(view.groups),
            total_files=view.total_files,
            done_files=view.done_files,
            results=[FileResultOut.of(r) for r in view.results],
            error=view.error,
            index_version=view.index_version,
            created_at=view.created_at,
            started_at=view.started_at,
            finished_at=view.finished_at,
        )
