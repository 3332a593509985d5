"""Reading events: filters, cursor pages (newest first) and streams (oldest first)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.rows import decode, event_columns
from backend.audit.types import AuditEventView, AuditFilter
from backend.db.models import AuditEvent
from backend.db.paging import Keyset

STREAM_BATCH = 500


@dataclass(frozen=True, slots=True)
class Page:
    events: tuple[AuditEventView, ...]
    next_cursor: str | None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filtered(flt: AuditFilter) -> Select[Any]:
    """SELECT of the events matching ``flt`` (no order, no limit), undecoded: see rows.py."""
    stmt = event_columns()
    e = AuditEvent
    if flt.since is not None:
        stmt = stmt.where(e.ts >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(e.ts < flt.until)
    if flt.user is not None:
        stmt = stmt.where(e.user_email == flt.user.strip().lower())
    if flt.user_id is not None:
        stmt = stmt.where(e.user_id == flt.user_id)
    for column, value in (
        (e.team, flt.team),
        (e.expert, flt.expert),
        (e.outcome, flt.outcome),
        (e.reason, flt.reason),
        (e.action, flt.action),
        (e.request_id, flt.request_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if flt.text:
        pattern = f"%{_escape_like(flt.text)}%"
        stmt = stmt.where(or_(e.prompt.ilike(pattern, escape="\\"), e.answer.ilike(pattern, escape="\\")))
    return stmt


# Newest first by seq (unique).
EVENTS = Keyset("audit_events", (int,))


async def page(session: AsyncSession, flt: AuditFilter, *, limit: int, cursor: str | None = None) -> Page:
    """Up to ``limit`` events, newest first, starting after ``cursor``. Raises BadRequest
    (``invalid_cursor``) for a cursor this list did not hand out."""
    stmt = filtered(flt)
    past = EVENTS.after((AuditEvent.seq,), cursor, descending=True)
    if past is not None:
        stmt = stmt.where(past)
    found = list((await session.execute(stmt.order_by(AuditEvent.seq.desc()).limit(limit + 1))).all())
    rows, next_cursor = EVENTS.page(found, limit, lambda r: (r.seq,))
    return Page(events=tuple(decode(r) for r in rows), next_cursor=next_cursor)


async def get_event(session: AsyncSession, seq: int) -> AuditEventView | None:
    row = (await session.execute(event_columns().where(AuditEvent.seq == seq))).first()
    return None if row is None else decode(row)


async def stream_events(
    session: AsyncSession, flt: AuditFilter, *, batch: int = STREAM_BATCH
) -> AsyncIterator[AuditEventView]:
    """Every matching event, oldest first, ``batch`` rows at a time.

    A server-side cursor on PostgreSQL (psycopg named cursor), an incremental fetch on
    SQLite: memory stays bounded by ``batch`` whatever the table size. The session must
    stay open until the iterator is exhausted or closed.
    """
    stmt = filtered(flt).order_by(AuditEvent.seq).execution_options(yield_per=batch)
    result = await session.stream(stmt)
    try:
        async for row in result:
            yield decode(row)  # plain rows: nothing enters the identity map
    finally:
        await result.close()
