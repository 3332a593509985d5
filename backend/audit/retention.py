"""Retention: drop prompt/answer text older than a cutoff, keep every hash.

The chain hashes a *digest* of the text (see chain.py), so nulling the text leaves every
event hash valid. Each run is itself audited (``audit.retention`` with its cutoff), and
verify accepts purged text only on events older than an audited cutoff.

Work is done in bounded batches, each in its own short transaction (the caller loops),
so a purge of a year of events never holds a long lock or a huge transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.chain import format_ts
from backend.audit.chainer import chain_pending
from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.verify import RETENTION_ACTION
from backend.audit.writer import AuditTrail
from backend.db.models import AuditEvent, utcnow
from backend.db.session import Database

DEFAULT_BATCH = 2000


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=days)


async def purge_batch(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Null the text of up to ``limit`` events older than ``cutoff``; return how many."""
    seqs = list(
        (
            await session.scalars(
                select(AuditEvent.seq)
                .where(AuditEvent.ts < cutoff, AuditEvent.content_purged_at.is_(None))
                .order_by(AuditEvent.seq)
                .limit(limit)
            )
        ).all()
    )
    if not seqs:
        return 0
    await session.execute(
        update(AuditEvent)
        .where(AuditEvent.seq.in_(seqs), AuditEvent.content_purged_at.is_(None))
        .values(prompt=None, answer=None, content_purged_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return len(seqs)


async def run_retention(
    db: Database, trail: AuditTrail, actor: Actor, days: int, *, batch: int = DEFAULT_BATCH
) -> tuple[int, datetime]:
    """Purge text older than ``days`` days. Returns (events purged, cutoff).

    A boundary function (like a task): it commits. The run is audited *before* any text
    is removed (so a crash mid-run never leaves purges that no audited cutoff covers),
    then each batch commits on its own, then the count is audited. The first event is
    chained before any purge (verify accepts a purge only under a *chained* cutoff).
    """
    cutoff = cutoff_for(days)
    payload: dict[str, object] = {"cutoff": format_ts(cutoff), "days": days}
    await trail.record(db, AuditEntry(action=RETENTION_ACTION, outcome=Outcome.OK, actor=actor, payload=payload))
    await chain_pending(db, trail.key)
    total = 0
    while True:
        async with db.transaction() as session:
            done = await purge_batch(session, cutoff, batch)
        total += done
        if done < batch:
            break
    await trail.record(
        db,
        AuditEntry(
            action=RETENTION_ACTION + ".finished",
            outcome=Outcome.OK,
            actor=actor,
            payload={**payload, "purged": total},
        ),
    )
    return total, cutoff
