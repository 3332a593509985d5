"""/api/v1/safety: flagged requests (admins and auditors read; admins label and
export). Parse, call SafetyFlagService, map."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from backend.audit.anchors import HeadMissing
from backend.container import Container
from backend.deps import get_container, get_principal
from backend.identity.types import Principal
from backend.safety.schemas import (
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
router = APIRouter(prefix="/api/v1/safety", tags=["safety"])

PrincipalDep = Annotated[Principal, Depends(get_principal)]
ContainerDep = Annotated[Container, Depends(get_container)]
Since = Annotated[datetime | None, Query(description="ISO 8601; naive means UTC")]
Until = Annotated[datetime | None, Query(description="exclusive")]
EXPORT_TYPE = "application/x-ndjson"


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


async def _chain_pending(container: Container) -> None:
    """Chain the audit outbox first, so that a flag links to its request's event."""
    try:
        await container.chainer.drain()
    except HeadMissing as exc:  # the flags are still served; their events have no seq yet
        log.error("audit: %s; listing safety flags without their pending events", exc)


@router.get("/flags", response_model=SafetyFlagPage, operation_id="listSafetyFlags")
async def list_flags(
    principal: PrincipalDep,
    container: ContainerDep,
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
    cursor: str | None = None,
) -> SafetyFlagPage:
    """Admins and auditors: flagged requests, newest first."""
    await _chain_pending(container)
    flt = FlagFilter(category=category, expert=expert, action=action, label=label, since=_utc(since), until=_utc(until))
    async with container.db.session() as session:
        page = await SafetyFlagService(session, container.audit).page(principal, flt, limit=limit, cursor=cursor)
    return SafetyFlagPage(data=[SafetyFlagOut.of(v) for v in page.flags], next_cursor=page.next_cursor)


@router.get("/stats", response_model=SafetyFlagStats, operation_id="getSafetyFlagStats")
async def flag_stats(
    principal: PrincipalDep, container: ContainerDep, since: Since = None, until: Until = None
) -> SafetyFlagStats:
    """Admins and auditors: flags per expert and category over a window (default the
    last 24 hours), for the console dashboard."""
    async with container.db.session() as session:
        stats = await SafetyFlagService(session, container.audit).stats(principal, _utc(since), _utc(until))
    return SafetyFlagStats.of(stats)


@router.get(
    "/flags/export",
    operation_id="exportSafetyFlags",
    response_class=Response,
    responses={200: {"content": {EXPORT_TYPE: {}}, "description": "one JSON object per line"}},
)
async def export_flags(principal: PrincipalDep, container: ContainerDep) -> Response:
    """Admins: the labelled flags that kept their text, oldest first, one JSON object per
    line in router/safety/data's format (``{"text", "label", "cell": "console", "style":
    "relabelled"}``). Audited (``safety.exported``)."""
    async with container.db.transaction() as session:
        rows = await SafetyFlagService(session, container.audit).export(principal)
    body = b"".join(
        orjson.dumps({"text": r.text, "label": r.label, "cell": r.cell, "style": r.style}) + b"\n" for r in rows
    )
    return Response(
        body,
        media_type=EXPORT_TYPE,
        headers={"content-disposition": 'attachment; filename="safety-relabelled.jsonl"'},
    )


@router.post("/flags/{flag_id}/label", response_model=SafetyFlagOut, operation_id="labelSafetyFlag")
async def label_flag(
    flag_id: int, body: SafetyLabelIn, principal: PrincipalDep, container: ContainerDep
) -> SafetyFlagOut:
    """Admins: label a flag (benign = a false positive, or the right category; null
    clears it). Audited (``safety.labelled``)."""
    async with container.db.transaction() as session:
        view = await SafetyFlagService(session, container.audit).label(principal, flag_id, body.label)
    return SafetyFlagOut.of(view)
