"""Reading the audit trail for the admin API (flushes nothing, writes nothing)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.query import Page, get_event, page
from backend.audit.restricted import TextAccess
from backend.audit.types import AuditEventView, AuditFilter, VerifyReport
from backend.audit.verify import EventCheck, check_event, verify_chain
from backend.audit.writer import AuditTrail
from backend.errors import NotFound

MAX_PAGE = 500


class AuditReader:
    """Reads for one reader: ``access`` withholds the text of restricted answers the
    reader may not see (restricted.py); the default reads everything (admins, the CLI)."""

    def __init__(self, session: AsyncSession, trail: AuditTrail, access: TextAccess | None = None) -> None:
        self._session = session
        self._trail = trail
        self._access = access or TextAccess(None)

    async def page(self, flt: AuditFilter, *, limit: int, cursor: str | None) -> Page:
        """Newest first. Raises BadRequest for a cursor we did not issue. A text search
        leaves out events whose text the reader may not see (the page may be shorter
        than ``limit``; ``next_cursor`` still goes on from the last event looked at)."""
        found = await page(self._session, flt, limit=min(limit, MAX_PAGE), cursor=cursor)
        shown = await self._access.apply(self._session, found.events, text_search=flt.text is not None)
        return Page(events=tuple(shown), next_cursor=found.next_cursor)

    async def event(self, seq: int, *, owner_id: int | None = None) -> AuditEventView:
        """Event ``seq``; with ``owner_id``, only if that user's (else NotFound, so that
        a user cannot tell someone else's event from a missing one)."""
        view = await get_event(self._session, seq)
        if view is None or (owner_id is not None and view.user_id != owner_id):
            raise NotFound(f"audit event {seq} does not exist", code="audit_event_not_found")
        [shown] = await self._access.apply(self._session, [view])
        return shown

    async def check(self, seq: int) -> EventCheck:
        result = await check_event(self._session, self._trail.key, seq)
        if result is None:
            raise NotFound(f"audit event {seq} does not exist", code="audit_event_not_found")
        return result

    async def verify(self) -> VerifyReport:
        return await verify_chain(self._session, self._trail.key, self._trail.anchors)
