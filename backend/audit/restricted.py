"""Restricted answers in the audit log: whose text a reader may see (issue 25, item 12).

The rule (docs/governance.md, "Restricted answers"): the prompt and answer of an event
whose answer was built from restricted documents are shown only to a reader who could
retrieve *every* one of those documents now, by the same rule retrieval applies
(``retrieval.acl.visible``: a document with groups is visible to a caller in any of
them). Admins see every text. Everything else about the event (who, when, route,
chunk ids, hashes) stays visible: the record is complete, only the text is withheld,
and the event says so (``text_withheld``). A cited chunk that no longer exists (its
document deleted or re-ingested) counts as restricted: its groups are unknown.

Searching text (``q``) cannot be used as an oracle: an event whose text is withheld
from the reader is left out of text-search results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import AuditEventView
from backend.db.models import Document, DocumentChunk
from retrieval.acl import visible


def cited_chunks(payload: Mapping[str, object]) -> tuple[int, ...]:
    """The chunk ids an event's answer was built from (``payload.retrieval.chunk_ids``)."""
    retrieval = payload.get("retrieval")
    if not isinstance(retrieval, Mapping):
        return ()
    ids = retrieval.get("chunk_ids")
    if not isinstance(ids, list):
        return ()
    return tuple(i for i in ids if isinstance(i, int) and not isinstance(i, bool))


@dataclass
class TextAccess:
    """What one reader may read. ``groups`` None: every text (admins)."""

    groups: frozenset[str] | None
    # chunk id -> its document's groups (None: no such chunk), looked up once per read.
    _known: dict[int, frozenset[str] | None] = field(default_factory=dict)

    async def apply(
        self, session: AsyncSession, views: Iterable[AuditEventView], *, text_search: bool = False
    ) -> list[AuditEventView]:
        """``views`` with the text this reader may not see withheld. With
        ``text_search``, withheld events are dropped (their text matched the query)."""
        views = list(views)
        if self.groups is None:
            return views
        await self._learn(session, {c for v in views for c in cited_chunks(v.payload)})
        out = []
        for view in views:
            if self._may_read(view):
                out.append(view)
            elif not text_search:
                out.append(replace(view, prompt=None, answer=None, text_withheld=True))
        return out

    def _may_read(self, view: AuditEventView) -> bool:
        assert self.groups is not None
        for chunk in cited_chunks(view.payload):
            groups = self._known.get(chunk)
            if groups is None or not visible(groups, self.groups):
                return False
        return True

    async def _learn(self, session: AsyncSession, chunks: set[int]) -> None:
        missing = [c for c in chunks if c not in self._known]
        for start in range(0, len(missing), 500):
            batch = missing[start : start + 500]
            self._known.update(dict.fromkeys(batch))
            rows = await session.execute(
                select(DocumentChunk.id, Document.groups)
                .join(Document, Document.id == DocumentChunk.document_id)
                .where(DocumentChunk.id.in_(batch))
            )
            for chunk_id, groups in rows:
                self._known[int(chunk_id)] = frozenset(groups or ())
