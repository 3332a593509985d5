"""/api/v1/documents and /api/v1/ingest-jobs: parse, call the knowledge services, map.

Writes (upload, delete) and job status need the admin role. Listing and reading a
document's text are open to every authenticated caller, for the documents their groups
may see (admins: all); one they may not see is a 404, like one that does not exist.
An upload answers 202 with a queued job. The job runs on a Celery worker when the
process has a task queue (Settings.job_runner; scale-out), else in-process after the
response (the embedded default); ``GET /api/v1/ingest-jobs/{id}`` reports its progress.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, BackgroundTasks, File, Form, Query, UploadFile

from backend.api.deps import AuditDep, DbDep, KnowledgeDep, PrincipalDep, TasksDep
from backend.api.schemas.knowledge import (
    DocumentDeleted,
    DocumentOut,
    DocumentPage,
    DocumentReleased,
    DocumentTextOut,
    IngestJobOut,
)
from backend.api.schemas.paging import CursorParam
from backend.audit.types import Actor
from backend.errors import Forbidden
from backend.knowledge.documents import DocumentService
from backend.principal import Principal

routes = APIRouter(prefix="/api/v1", tags=["knowledge"])


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("this operation needs the admin role", code="admin_required")


def _groups(raw: str) -> frozenset[str]:
    return frozenset(g.strip() for g in raw.split(",") if g.strip())


@routes.post("/documents", status_code=202, response_model=IngestJobOut, operation_id="uploadDocuments")
async def upload_documents(
    principal: PrincipalDep,
    knowledge: KnowledgeDep,
    tasks: TasksDep,
    db: DbDep,
    background: BackgroundTasks,
    domain: Annotated[str, Form(min_length=1, max_length=64)],
    files: Annotated[list[UploadFile], File()],
    groups: Annotated[str, Form(max_length=2000)] = "",
) -> IngestJobOut:
    _require_admin(principal)
    jobs = knowledge.jobs
    uploads = [(f.filename or "", await f.read()) for f in files]
    async with db.transaction() as session:
        job_id = await jobs.submit_uploads(session, domain, uploads, groups=_groups(groups), user_id=principal.user_id)
        view = await jobs.get(session, job_id)
    # Enqueued after the commit: the runner reads the job from the database.
    if tasks is not None:
        await anyio.to_thread.run_sync(tasks.ingest, job_id)
    else:
        background.add_task(jobs.run, job_id)
    return IngestJobOut.of(view)


@routes.get("/documents", response_model=DocumentPage, operation_id="listDocuments")
async def list_documents(
    principal: PrincipalDep,
    db: DbDep,
    knowledge: KnowledgeDep,
    domain: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: CursorParam = None,
) -> DocumentPage:
    """By id; ``total`` counts every document the caller may see, on all pages."""
    async with db.session() as session:
        listing = await DocumentService(session, knowledge.scanner).list_documents(
            groups=None if principal.is_admin else principal.groups,
            domain=domain,
            limit=limit,
            cursor=cursor,
        )
    return DocumentPage(
        data=[DocumentOut.of(d) for d in listing.documents], next_cursor=listing.next_cursor, total=listing.total
    )


@routes.get("/documents/{document_id}/text", response_model=DocumentTextOut, operation_id="getDocumentText")
async def get_document_text(
    document_id: int, principal: PrincipalDep, db: DbDep, knowledge: KnowledgeDep
) -> DocumentTextOut:
    async with db.session() as session:
        documents = DocumentService(session, knowledge.scanner)
        text = await documents.read(document_id, groups=None if principal.is_admin else principal.groups)
    return DocumentTextOut.of(text)


@routes.delete("/documents/{document_id}", response_model=DocumentDeleted, operation_id="deleteDocument")
async def delete_document(document_id: int, principal: PrincipalDep, knowledge: KnowledgeDep) -> DocumentDeleted:
    _require_admin(principal)
    deleted, version = await knowledge.jobs.delete_document(document_id)
    return DocumentDeleted(id=deleted, index_version=version)


@routes.post("/documents/{document_id}/release", response_model=DocumentReleased, operation_id="releaseDocument")
async def release_document(
    document_id: int, principal: PrincipalDep, audit: AuditDep, knowledge: KnowledgeDep
) -> DocumentReleased:
    """Release a document the safety scan flagged from quarantine (admins; audited)."""
    _require_admin(principal)
    view, version = await knowledge.jobs.release_document(Actor.of(principal), audit, document_id)
    return DocumentReleased(document=DocumentOut.of(view), index_version=version)


@routes.get("/ingest-jobs/{job_id}", response_model=IngestJobOut, operation_id="getIngestJob")
async def get_ingest_job(job_id: str, principal: PrincipalDep, db: DbDep, knowledge: KnowledgeDep) -> IngestJobOut:
    _require_admin(principal)
    async with db.session() as session:
        view = await knowledge.jobs.get(session, job_id)
    return IngestJobOut.of(view)
