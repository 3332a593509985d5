"""Releasing a document from safety quarantine (service: flushes, never commits).

Under a domain's ``quarantine`` policy a document whose chunks the safety scan flagged
stays out of the index (backend/knowledge/safety.py) until an admin releases it, from
the API (``POST /api/v1/documents/{id}/release``) or the CLI (``expertgate ingest
--release ID``). A release holds for the content the admin saw: a changed file is
scanned again and, if flagged, held again. The caller publishes the domain's index
after commit (:meth:`backend.knowledge.jobs.IngestJobs.release_document`).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.models import Document, utcnow
from backend.errors import BadRequest, NotFound
from backend.knowledge.types import DocumentSafety

DOCUMENT_RELEASED = "knowledge.document_released"


class DocumentNotFlagged(BadRequest):
    """Only a document the safety scan flagged can be released."""

    code = "document_not_flagged"


class QuarantineService:
    def __init__(self, session: AsyncSession, trail: AuditTrail) -> None:
        self._session = session
        self._trail = trail

    async def release(self, actor: Actor, document_id: int) -> Document:
        """Release the document: it goes back into its domain's index at the next publish;
        its flagged passages are then fenced. Audited (``knowledge.document_released``,
        with the scan's category and score). Releasing a released document is a no-op.
        Raises NotFound, DocumentNotFlagged."""
        doc = await self._session.get(Document, document_id)
        if doc is None:
            raise NotFound(f"document {document_id} does not exist", code="document_not_found", param="id")
        summary = DocumentSafety.from_json(doc.safety)
        if summary is None or not summary.flagged:
            raise DocumentNotFlagged(f"document {document_id} was not flagged by the safety scan", param="id")
        if doc.safety_released_at is not None:
            return doc
        doc.safety_released_at = utcnow()
        doc.safety_released_by = actor.user_id
        await self._session.flush()
        await self._trail.append(
            self._session,
            AuditEntry(
                action=DOCUMENT_RELEASED,
                outcome=Outcome.OK,
                actor=actor,
                status=200,
                payload={
                    "document_id": doc.id,
                    "domain": doc.domain,
                    "source": doc.source,
                    "content_hash": doc.content_hash,
                    "safety": summary.to_json(),
                },
            ),
        )
        return doc
