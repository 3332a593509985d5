"""/api/v1/safety: flagged requests (admins and auditors read; admins label and
export). Parse, call SafetyFlagService, map."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from backend.api.deps import AuditDep, ChainerDep, DbDep, PrincipalDep
from backend.api.schemas.paging import CursorParam
from backend.api.schemas.safety import (
    ActionOut,
    CategoryOut,
    LabelOut,
    SafetyFlagOut,
    SafetyFlagPage,
    SafetyFlagStats,
    SafetyLabelIn,
)
from backend.safety.service import SafetyFlagService
from backend.safety.types import FlagFilter

log = logging.getLogger(__name__)
routes = APIRouter(prefix="/api/v1/safety", tags=["safety"])

Since = Annotated[datetime | None, Query(description="ISO 8601; naive means UTC")]
Until = Annotated[datetime | None, Query(description="exclusive")]
EXPORT_TYPE = "application/x-ndjson"


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


@routes.get("/flags", response_model=SafetyFlagPage, operation_id="listSafetyFlags")
async def list_flags(
    principal: PrincipalDep,
    chainer: ChainerDep,
    db: DbDep,
    audit: AuditDep,
    category: CategoryOut | None = None,
    expert: str | None = None,
    action: ActionOut | None = None,
    label: Annotated[
        LabelOut | Literal["unlabelled"] | None,
        Query(description="a label, or `unlabelled` for flags not yet reviewed"),
    ] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: CursorParam = None,
) -> SafetyFlagPage:
    """Admins and auditors: flagged requests, newest first."""
    await chainer.drain_before_read()
    flt = FlagFilter(category=category, expert=expert, action=action, label=label, since=_utc(since), until=_utc(until))
    async with db.session() as session:
        page = await SafetyFlagService(session, audit).page(principal, flt, limit=limit, cursor=cursor)
    return SafetyFlagPage(data=[SafetyFlagOut.of(v) for v in page.flags], next_cursor=page.next_cursor)


@routes.get("/stats", response_model=SafetyFlagStats, operation_id="getSafetyFlagStats")
async def flag_stats(
    principal: PrincipalDep, db: DbDep, audit: AuditDep, since: Since = None, until: Until = None
) -> SafetyFlagStats:
    """Admins and auditors: flags per expert and category over a window (default the
    last 24 hours), for the console dashboard."""
    async with db.session() as session:
        stats = await SafetyFlagService(session, audit).stats(principal, _utc(since), _utc(until))
    return SafetyFlagStats.of(stats)


@routes.get(
    "/flags/export",
    operation_id="exportSafetyFlags",
    response_class=Response,
    responses={200: {"content": {EXPORT_TYPE: {}}, "description": "one JSON object per line"}},
)
async def export_flags(principal: PrincipalDep, db: DbDep, audit: AuditDep) -> Response:
    """Admins: the labelled flags that kept their text, oldest first, one JSON object per
    line in router/safety/data's format (``{"text", "label", "cell": "console", "style":
    "relabelled"}``). Audited (``safety.exported``)."""
    async with db.transaction() as session:
        rows = await SafetyFlagService(session, audit).export(principal)
    body = b"".join(
        orjson.dumps({"text": r.text, "label": r.label, "cell": r.cell, "style": r.style}) + b"\n" for r in rows
    )
    return Response(
        body,
        media_type=EXPORT_TYPE,
        headers={"content-disposition": 'attachment; filename="safety-relabelled.jsonl"'},
    )


@routes.post("/flags/{flag_id}/label", response_model=SafetyFlagOut, operation_id="labelSafetyFlag")
async def label_flag(
    flag_id: int, body: SafetyLabelIn, principal: PrincipalDep, db: DbDep, audit: AuditDep
) -> SafetyFlagOut:
    """Admins: label a flag (benign = a false positive, or the right category; null
    clears it). Audited (``safety.labelled``)."""
    async with db.transaction() as session:
        view = await SafetyFlagService(session, audit).label(principal, flag_id, body.label)
    return SafetyFlagOut.of(view)
