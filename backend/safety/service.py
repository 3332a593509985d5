"""Flagged requests: list, count, label, export (flushes, never commits).

Who may do what: admins and auditors read the list and the counts; only admins label
and export (an export is training data built from users' messages). A label is an
admin action, audited (``safety.labelled``) in the same transaction; an export is
audited (``safety.exported``) before its rows are handed out.

Raises Forbidden (``auditor_required`` / ``admin_required``), NotFound
(``safety_flag_not_found``) and BadRequest (``invalid_cursor``: a cursor this list did not hand out).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.models import AuditEvent, SafetyFlag, utcnow
from backend.db.paging import Keyset
from backend.errors import Forbidden, NotFound
from backend.principal import Principal
from backend.safety.types import (
    UNLABELLED,
    FlagCount,
    FlagFilter,
    FlagPage,
    FlagStats,
    FlagView,
    Label,
    TrainingRow,
)

READERS = frozenset({"admin", "auditor"})
LABELLED = "safety.labelled"
EXPORTED = "safety.exported"
DEFAULT_WINDOW = timedelta(hours=24)


def require_reader(principal: Principal) -> None:
    """Admins and auditors read flags. Raises Forbidden."""
    if not principal.roles & READERS:
        raise Forbidden("the safety flags need the auditor or admin role", code="auditor_required")


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("labelling and exporting safety flags needs the admin role", code="admin_required")


# Newest first by id (unique).
FLAGS = Keyset("safety_flags", (int,))


class SafetyFlagService:
    def __init__(self, session: AsyncSession, trail: AuditTrail) -> None:
        self._session = session
        self._trail = trail

    async def page(self, principal: Principal, flt: FlagFilter, *, limit: int, cursor: str | None = None) -> FlagPage:
        """Up to ``limit`` flags, newest first, after ``cursor``; each with the seq of its
        request's audit event when that is chained. Raises BadRequest (``invalid_cursor``)
        for a cursor this list did not hand out."""
        require_reader(principal)
        stmt = _filtered(flt)
        past = FLAGS.after((SafetyFlag.id,), cursor, descending=True)
        if past is not None:
            stmt = stmt.where(past)
        found = list((await self._session.scalars(stmt.order_by(SafetyFlag.id.desc()).limit(limit + 1))).all())
        rows, next_cursor = FLAGS.page(found, limit, lambda r: (r.id,))
        seqs = await self._audit_seqs([r.request_id for r in rows])
        return FlagPage(flags=tuple(_view(r, seqs.get(r.request_id)) for r in rows), next_cursor=next_cursor)

    async def stats(
        self, principal: Principal, since: datetime | None = None, until: datetime | None = None
    ) -> FlagStats:
        """Flags created in ``[since, until)`` (default: the last 24 hours up to now)."""
        require_reader(principal)
        until = until or utcnow()
        since = since or until - DEFAULT_WINDOW
        f = SafetyFlag
        window = (f.created_at >= since, f.created_at < until)
        cells = (
            await self._session.execute(
                select(f.expert, f.category, func.count()).where(*window).group_by(f.expert, f.category)
            )
        ).all()
        actions = (await self._session.execute(select(f.action, func.count()).where(*window).group_by(f.action))).all()
        labels = (await self._session.execute(select(f.label, func.count()).where(*window).group_by(f.label))).all()
        labelled = {str(label): int(n) for label, n in labels if label is not None}
        return FlagStats(
            since=since,
            until=until,
            total=sum(int(n) for *_, n in cells),
            cells=tuple(
                FlagCount(str(e), str(c), int(n)) for e, c, n in sorted(cells, key=lambda r: (-int(r[2]), r[0], r[1]))
            ),
            by_action={str(a): int(n) for a, n in actions},
            labels=labelled,
            unlabelled=sum(int(n) for label, n in labels if label is None),
        )

    async def label(self, principal: Principal, flag_id: int, label: Label | None) -> FlagView:
        """Set (or, with None, clear) an admin's label on a flag; audited in the same
        transaction. Raises Forbidden, NotFound."""
        require_admin(principal)
        flag = await self._session.get(SafetyFlag, flag_id)
        if flag is None:
            raise NotFound(f"safety flag {flag_id} does not exist", code="safety_flag_not_found", param="flag_id")
        previous = flag.label
        flag.label = label
        flag.labelled_by = None if label is None else principal.email
        flag.labelled_at = None if label is None else utcnow()
        await self._session.flush()
        await self._trail.append(
            self._session,
            AuditEntry(
                action=LABELLED,
                outcome=Outcome.OK,
                actor=Actor.of(principal),
                request_id=flag.request_id,
                status=200,
                expert=flag.expert,
                payload={
                    "flag_id": flag.id,
                    "label": label,
                    "previous": previous,
                    "category": flag.category,
                    "score": flag.score,
                    "action": flag.action,
                },
            ),
        )
        seqs = await self._audit_seqs([flag.request_id])
        return _view(flag, seqs.get(flag.request_id))

    async def training_rows(self, actor: Actor) -> list[TrainingRow]:
        """Every labelled flag that kept its text, oldest first, in the training data's
        format; the export is audited first (with how many rows it holds). The caller
        checks the role (the CLI's operator is trusted by shell access); see
        :meth:`export`."""
        stmt = (
            select(SafetyFlag.excerpt, SafetyFlag.label)
            .where(SafetyFlag.label.is_not(None), SafetyFlag.excerpt.is_not(None))
            .order_by(SafetyFlag.id)
        )
        rows = [TrainingRow(text=str(text), label=str(label)) for text, label in (await self._session.execute(stmt))]
        rows = [r for r in rows if r.text.strip()]
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.label] = counts.get(r.label, 0) + 1
        await self._trail.append(
            self._session,
            AuditEntry(
                action=EXPORTED,
                outcome=Outcome.OK,
                actor=actor,
                status=200,
                payload={"rows": len(rows), "labels": counts},
            ),
        )
        return rows

    async def export(self, principal: Principal) -> list[TrainingRow]:
        """:meth:`training_rows` for an admin. Raises Forbidden."""
        require_admin(principal)
        return await self.training_rows(Actor.of(principal))

    async def _audit_seqs(self, request_ids: Sequence[str]) -> dict[str, int]:
        """The seq of each request's first chained audit event (its own; later ones, such
        as a label, come after it)."""
        if not request_ids:
            return {}
        stmt = (
            select(AuditEvent.request_id, func.min(AuditEvent.seq))
            .where(AuditEvent.request_id.in_(set(request_ids)))
            .group_by(AuditEvent.request_id)
        )
        return {str(rid): int(seq) for rid, seq in (await self._session.execute(stmt)).all()}


def _filtered(flt: FlagFilter) -> Select[Any]:
    f = SafetyFlag
    stmt = select(f)
    for column, value in ((f.category, flt.category), (f.expert, flt.expert), (f.action, flt.action)):
        if value is not None:
            stmt = stmt.where(column == value)
    if flt.label == UNLABELLED:
        stmt = stmt.where(f.label.is_(None))
    elif flt.label is not None:
        stmt = stmt.where(f.label == flt.label)
    if flt.since is not None:
        stmt = stmt.where(f.created_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(f.created_at < flt.until)
    return stmt


def _view(flag: SafetyFlag, audit_seq: int | None) -> FlagView:
    scores: dict[str, Any] = dict(flag.scores or {})
    return FlagView(
        flag_id=flag.id,
        request_id=flag.request_id,
        created_at=flag.created_at,
        user_id=flag.user_id,
        user_email=flag.user_email,
        channel=flag.channel,
        expert=flag.expert,
        category=flag.category,
        score=flag.score,
        action=flag.action,
        scores={str(c): float(s) for c, s in scores.items()},
        rules=tuple(flag.rules or ()),
        model=flag.model,
        excerpt=flag.excerpt,
        label=flag.label,
        labelled_by=flag.labelled_by,
        labelled_at=flag.labelled_at,
        audit_seq=audit_seq,
    )
