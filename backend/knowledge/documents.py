"""Documents as the API and CLI see them: list, get, read, delete (service: flushes only)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import Document, DocumentChunk
from backend.db.paging import Keyset
from backend.errors import NotFound
from backend.knowledge.safety import DocumentScanner, is_quarantined
from backend.knowledge.types import (
    DocumentListing,
    DocumentSafety,
    DocumentSection,
    DocumentText,
    DocumentView,
    FileResult,
    FileStatus,
)
from retrieval.acl import visible
from retrieval.types import Location

# By id, ascending (ids are never reused).
DOCUMENTS = Keyset("documents", (int,))


def document_view(doc: Document, scanner: DocumentScanner | None = None) -> DocumentView:
    """The document as the API shows it; ``scanner`` tells whether its domain's policy
    holds it in quarantine (None: not known here, shown as not held)."""
    held = scanner is not None and is_quarantined(scanner.policy(doc.domain), doc.safety, doc.safety_released_at)
    return DocumentView(
        id=doc.id,
        domain=doc.domain,
        source=doc.source,
        title=doc.title,
        media_type=doc.media_type,
        groups=tuple(doc.groups),
        chunk_count=doc.chunk_count,
        size_bytes=doc.size_bytes,
        content_hash=doc.content_hash,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
        safety=DocumentSafety.from_json(doc.safety),
        quarantined=held,
    )


class DocumentService:
    def __init__(self, session: AsyncSession, scanner: DocumentScanner | None = None) -> None:
        self._session = session
        self._scanner = scanner  # for the documents' quarantine state

    async def list_documents(
        self,
        *,
        groups: frozenset[str] | None,
        domain: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> DocumentListing:
        """Up to ``limit`` documents by id after ``cursor`` (None: from the first), and the
        total. Raises BadRequest (``invalid_cursor``) for a cursor this list did not hand out.

        ``groups`` None lists every document (admins); otherwise only documents a caller
        in those groups may see are listed or counted. Visibility is decided here, not in
        SQL, so the rows are read in keyset batches until the page is full.
        """
        base = select(Document)
        if domain is not None:
            base = base.where(Document.domain == domain)
        past = DOCUMENTS.after((Document.id,), cursor, descending=False)
        query = base if past is None else base.where(past)
        found: list[Document] = []
        while len(found) <= limit:
            batch = list(await self._session.scalars(query.order_by(Document.id).limit(limit + 1)))
            found += [d for d in batch if groups is None or visible(frozenset(d.groups), groups)]
            if len(batch) <= limit:
                break
            query = base.where(Document.id > batch[-1].id)
        docs, next_cursor = DOCUMENTS.page(found, limit, lambda d: (d.id,))
        return DocumentListing(
            tuple(document_view(d, self._scanner) for d in docs), next_cursor, await self._count(groups, domain)
        )

    async def _count(self, groups: frozenset[str] | None, domain: str | None) -> int:
        """How many documents (in ``domain``, if given) a caller in ``groups`` may see."""
        if groups is None:
            query = select(func.count()).select_from(Document)
            if domain is not None:
                query = query.where(Document.domain == domain)
            return int(await self._session.scalar(query) or 0)
        shown = select(Document.groups)
        if domain is not None:
            shown = shown.where(Document.domain == domain)
        return sum(1 for doc_groups in await self._session.scalars(shown) if visible(frozenset(doc_groups), groups))

    async def get(self, document_id: int) -> Document:
        doc = await self._session.get(Document, document_id)
        if doc is None:
            raise NotFound(f"document {document_id} does not exist", code="document_not_found", param="id")
        return doc

    async def read(self, document_id: int, *, groups: frozenset[str] | None) -> DocumentText:
        """The document's whole text, section by section, for a caller in ``groups``
        (None: every document, admins). A document the caller may not see raises the
        same NotFound as one that does not exist: its existence is not told."""
        doc = await self._session.get(Document, document_id)
        if doc is None or (groups is not None and not visible(frozenset(doc.groups), groups)):
            raise NotFound(f"document {document_id} does not exist", code="document_not_found", param="id")
        chunks = await self._session.scalars(
            select(DocumentChunk).where(DocumentChunk.document_id == doc.id).order_by(DocumentChunk.ordinal)
        )
        sections = tuple(
            DocumentSection(
                ordinal=c.ordinal,
                title_path=tuple(c.title_path),
                location=str(Location(start_line=c.start_line, end_line=c.end_line, page=c.page)),
                text=c.text,
            )
            for c in chunks
        )
        return DocumentText(document_view(doc, self._scanner), sections)

    async def delete(self, document_id: int) -> DocumentView:
        """Delete the document and its chunks. Raises NotFound."""
        doc = await self.get(document_id)
        view = document_view(doc)
        await self._remove(doc)
        return view

    async def delete_sources(
        self, sources: Sequence[str], *, domain: str | None = None
    ) -> list[tuple[str, FileResult]]:
        """Delete documents by source; a source ending in "/" deletes everything under it.

        Returns (domain, result) per deleted document, and a ``failed`` result with code
        ``not_found`` for each source that matched nothing.
        """
        out: list[tuple[str, FileResult]] = []
        for source in sources:
            query = select(Document).order_by(Document.id)
            if source.endswith("/"):
                query = query.where(Document.source.startswith(source, autoescape=True))
            else:
                query = query.where(Document.source == source)
            if domain is not None:
                query = query.where(Document.domain == domain)
            docs = list(await self._session.scalars(query))
            if not docs:
                out.append(
                    (
                        domain or "",
                        FileResult(
                            source,
                            FileStatus.FAILED,
                            error_code="not_found",
                            message="no ingested document has this source",
                        ),
                    )
                )
            for doc in docs:
                out.append(
                    (
                        doc.domain,
                        FileResult(doc.source, FileStatus.DELETED, doc.id, doc.chunk_count),
                    )
                )
                await self._remove(doc)
        return out

    async def _remove(self, doc: Document) -> None:
        # Chunks first and explicitly: not every database enforces ON DELETE CASCADE
        # for rows the ORM did not load.
        await self._session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == doc.id))
        await self._session.delete(doc)
        await self._session.flush()
