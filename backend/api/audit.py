"""/api/v1/admin/audit (auditors and admins) and /api/v1/me/audit (the caller's own).

Reads are open to the ``auditor`` and ``admin`` roles; the retention run is an admin
write. Refusals (a user reading the audit log, an auditor running retention) are
themselves audited by the principal dependency.

Lists, single events and exports first chain whatever is pending in the outbox
(usually nothing: one small read), so a reader sees every event committed before the
read, with its final seq and hash. Verify does not: it is read-only and reports the
pending events as ``pending``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.api.deps import AdminDep, AuditDep, AuditorDep, ChainerDep, DbDep, PrincipalDep, SettingsDep
from backend.api.schemas.audit import (
    AuditEventDetail,
    AuditEventOut,
    AuditPage,
    Integrity,
    RetentionIn,
    RetentionOut,
    VerifyOut,
)
from backend.api.schemas.paging import CursorParam
from backend.audit.errors import AuditExportFailed
from backend.audit.export import ExportFormat, record_export, render
from backend.audit.query import stream_events
from backend.audit.restricted import TextAccess
from backend.audit.retention import run_retention
from backend.audit.service import AuditReader
from backend.audit.types import Actor, AuditEventView, AuditFilter
from backend.errors import BadRequest
from backend.principal import Principal

log = logging.getLogger(__name__)
routes = APIRouter(prefix="/api/v1", tags=["audit"])

OutcomeParam = Literal["ok", "refused", "error", "aborted"]


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


async def audit_filter(
    since: Annotated[datetime | None, Query(description="ISO 8601; naive means UTC")] = None,
    until: Annotated[datetime | None, Query(description="exclusive")] = None,
    user: Annotated[str | None, Query(description="user email")] = None,
    team: str | None = None,
    expert: str | None = None,
    outcome: OutcomeParam | None = None,
    reason: str | None = None,
    action: str | None = None,
    request_id: str | None = None,
    q: Annotated[str | None, Query(min_length=2, max_length=200, description="text in prompt/answer")] = None,
) -> AuditFilter:
    return AuditFilter(
        since=_utc(since),
        until=_utc(until),
        user=user,
        team=team,
        expert=expert,
        outcome=outcome,
        reason=reason,
        action=action,
        request_id=request_id,
        text=q,
    )


FilterDep = Annotated[AuditFilter, Depends(audit_filter)]
Limit = Annotated[int, Query(ge=1, le=500)]


def _access(principal: Principal) -> TextAccess:
    """Admins read every text; anyone else not the text of answers built from documents
    outside their groups (restricted.py)."""
    return TextAccess(None if principal.is_admin else principal.groups)


@routes.get("/admin/audit", response_model=AuditPage, operation_id="listAuditEvents")
async def list_events(
    principal: AuditorDep,
    audit: AuditDep,
    chainer: ChainerDep,
    db: DbDep,
    flt: FilterDep,
    limit: Limit = 50,
    cursor: CursorParam = None,
) -> AuditPage:
    """Newest first. A corrupted row is listed in place with ``unreadable`` set."""
    await chainer.drain_before_read()
    async with db.session() as session:
        reader = AuditReader(session, audit, _access(principal))
        result = await reader.page(flt, limit=limit, cursor=cursor)
    return AuditPage(data=[AuditEventOut.of(e) for e in result.events], next_cursor=result.next_cursor)


@routes.get("/admin/audit/export", operation_id="exportAuditEvents")
async def export_events(
    principal: AuditorDep,
    db: DbDep,
    audit: AuditDep,
    chainer: ChainerDep,
    flt: FilterDep,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    """Every matching event, oldest first, streamed (bounded memory at any size).

    The export itself is audited before the first byte is sent. A corrupted row is
    exported as far as it reads, with ``unreadable`` set. The first line is read before
    the response starts: a failure there is a 500 ``audit_export_failed``, never an
    empty 200; a failure later cuts the connection (the client sees a broken transfer).
    """
    await record_export(db, audit, Actor.of(principal), format, flt)
    fmt: ExportFormat = format

    access = _access(principal)

    async def shown(session: AsyncSession, lookups: AsyncSession) -> AsyncIterator[AuditEventView]:
        async for view in stream_events(session, flt):
            for out in await access.apply(lookups, [view], text_search=flt.text is not None):
                yield out

    async def body() -> AsyncGenerator[bytes, None]:
        async with db.session() as session, db.session() as lookups:
            async for chunk in render(shown(session, lookups), fmt):
                yield chunk

    lines = body()
    try:
        await chainer.drain_before_read()  # the export event above included
        first = [await anext(lines)]
    except StopAsyncIteration:
        first = []
    except SQLAlchemyError as exc:
        await lines.aclose()
        log.error("audit export failed before the first line: %s", exc)
        raise AuditExportFailed(
            "the audit export could not read the audit trail; nothing was sent (see the server log)"
        ) from exc

    async def resumed() -> AsyncIterator[bytes]:
        for chunk in first:
            yield chunk
        async for chunk in lines:
            yield chunk

    media = "application/x-ndjson" if fmt == "jsonl" else "text/csv; charset=utf-8"
    return StreamingResponse(
        resumed(),
        media_type=media,
        headers={"content-disposition": f'attachment; filename="audit.{fmt}"'},
    )


@routes.get("/admin/audit/verify", response_model=VerifyOut, operation_id="verifyAuditChain")
async def verify(_: AuditorDep, db: DbDep, audit: AuditDep) -> VerifyOut:
    """Walk the whole chain (seconds per million events); ``ok`` false names the seq."""
    async with db.session() as session:
        report = await AuditReader(session, audit).verify()
    return VerifyOut.of(report)


@routes.post("/admin/audit/retention", response_model=RetentionOut, operation_id="runRetention")
async def retention(
    principal: AdminDep, settings: SettingsDep, db: DbDep, audit: AuditDep, body: RetentionIn
) -> RetentionOut:
    days = body.days or settings.audit_retention_days
    if days is None:
        raise BadRequest(
            "no retention period: send 'days' or set EXPERTGATE_AUDIT_RETENTION_DAYS",
            param="days",
        )
    purged, cutoff = await run_retention(db, audit, Actor.of(principal), days)
    return RetentionOut(purged=purged, cutoff=cutoff)


@routes.get("/admin/audit/{seq}", response_model=AuditEventDetail, operation_id="getAuditEvent")
async def get_event(
    seq: int, principal: AuditorDep, audit: AuditDep, chainer: ChainerDep, db: DbDep
) -> AuditEventDetail:
    """One event with its whole trace (the payload) and a check of its integrity."""
    await chainer.drain_before_read()
    async with db.session() as session:
        reader = AuditReader(session, audit, _access(principal))
        view = await reader.event(seq)
        check = await reader.check(seq)
    integrity = Integrity(
        hash_ok=check.hash_ok,
        content_ok=check.content_ok,
        links_to_previous=check.links_to_previous,
        problem=check.problem,
    )
    return AuditEventDetail(**AuditEventOut.of(view).model_dump(), integrity=integrity)


@routes.get("/me/audit", response_model=AuditPage, operation_id="listMyAuditEvents")
async def my_events(
    principal: PrincipalDep,
    chainer: ChainerDep,
    db: DbDep,
    audit: AuditDep,
    limit: Limit = 50,
    cursor: CursorParam = None,
) -> AuditPage:
    """The caller's own events, newest first."""
    flt = AuditFilter(user_id=principal.user_id)
    await chainer.drain_before_read()
    async with db.session() as session:
        result = await AuditReader(session, audit, _access(principal)).page(flt, limit=limit, cursor=cursor)
    return AuditPage(data=[AuditEventOut.of(e) for e in result.events], next_cursor=result.next_cursor)


@routes.get("/me/audit/{seq}", response_model=AuditEventOut, operation_id="getMyAuditEvent")
async def my_event(seq: int, principal: PrincipalDep, chainer: ChainerDep, db: DbDep, audit: AuditDep) -> AuditEventOut:
    """One of the caller's own events; someone else's is 404, like a missing one."""
    await chainer.drain_before_read()
    async with db.session() as session:
        view = await AuditReader(session, audit, _access(principal)).event(seq, owner_id=principal.user_id)
    return AuditEventOut.of(view)
