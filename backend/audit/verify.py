"""Walking the chain: every event recomputed, in seq order, streamed (constant memory).

A report names the *first* bad sequence number and why:

- an edited row: its recomputed hash differs (any hashed field), or its prompt/answer
  no longer match the stored content digest;
- a deleted row: a gap in seq (the missing seq is named), or a tail shorter than the
  chain head says;
- an inserted row: its prev_hash does not link, its hash does not verify (HMAC), or it
  lies beyond the chain head;
- text removed outside retention: content missing without ``content_purged_at``, or
  purged at a time no audited retention run covers.

Runs while writers append: it verifies the chain up to the head it read first.
Events still waiting in the outbox (written, not yet chained) are counted as
``pending``: they have no place in the chain yet, so they are neither verified nor a
failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.chain import GENESIS_HASH, HMAC_PREFIX, ChainKey, content_digest, key_for_alg
from backend.audit.chain import format_ts as _fmt
from backend.audit.types import VerifyReport
from backend.audit.writer import body_of
from backend.db.models import AuditChainHead, AuditEvent, AuditOutbox

RETENTION_ACTION = "audit.retention"
_BATCH = 1000


class _Walk:
    def __init__(self, key: ChainKey) -> None:
        self.key = key
        self.expected = 1
        self.prev = GENESIS_HASH
        self.checked = 0
        self.purged = 0
        self.seen_hmac = False
        # The purged event with the latest timestamp, and the latest audited cutoff.
        self.latest_purged: tuple[datetime, int] | None = None
        self.latest_cutoff: datetime | None = None
        self.pending = 0

    def check(self, row: AuditEvent) -> tuple[int, str] | None:
        """(first bad seq, why) if ``row`` breaks the chain; else advance past it."""
        if row.seq > self.expected:
            missing = (
                f"{self.expected}" if row.seq == self.expected + 1 else
                f"{self.expected}..{row.seq - 1}"
            )  # fmt: skip
            why = f"event(s) {missing} missing (deleted); the chain resumes at {row.seq}"
            return self.expected, why
        problem = self._problem(row)
        if problem is not None:
            return row.seq, problem
        self.prev = row.hash
        self.expected = row.seq + 1
        self.checked += 1
        return None

    def _problem(self, row: AuditEvent) -> str | None:
        if row.prev_hash != self.prev:
            return (
                "prev_hash does not link to the previous event "
                "(an event before it was altered, removed or this one was inserted)"
            )
        key = key_for_alg(row.alg, self.key)
        if row.alg.startswith(HMAC_PREFIX):
            self.seen_hmac = True
        elif self.seen_hmac:
            return f"written with {row.alg!r} after keyed events (a forged, unkeyed insert)"
        if key is None:
            return (
                f"written under key {row.alg!r}, which this verifier does not hold "
                "(set EXPERTGATE_SECRET_KEY to the key the chain was written with)"
            )
        if row.content_purged_at is None:
            if content_digest(key, row.prompt, row.answer) != row.content_digest:
                return "prompt/answer text does not match its digest (edited or removed)"
        else:
            if row.prompt is not None or row.answer is not None:
                return "marked purged but still holds text"
            self.purged += 1
            if self.latest_purged is None or row.ts > self.latest_purged[0]:
                self.latest_purged = (row.ts, row.seq)
        if body_of(row).hash(key) != row.hash:
            return "hash does not match the event's fields (the row was edited)"
        if row.action == RETENTION_ACTION:
            cutoff = _cutoff(row.payload)
            if cutoff is not None and (self.latest_cutoff is None or cutoff > self.latest_cutoff):
                self.latest_cutoff = cutoff
        return None

    def report(self, head: AuditChainHead, bad: int | None = None, why: str | None = None) -> VerifyReport:
        return VerifyReport(
            ok=bad is None,
            checked=self.checked,
            head_seq=head.seq,
            head_hash=head.hash,
            first_bad_seq=bad,
            problem=why,
            purged=self.purged,
            pending=self.pending,
        )


def _cutoff(payload: object) -> datetime | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("cutoff"), str):
        return None
    try:
        return datetime.fromisoformat(payload["cutoff"].replace("Z", "+00:00"))
    except ValueError:
        return None


def _aware(ts: datetime) -> datetime:
    return datetime.fromisoformat(_fmt(ts).replace("Z", "+00:00"))


async def verify_chain(session: AsyncSession, key: ChainKey) -> VerifyReport:
    """Verify every event against ``key`` (and unkeyed events by SHA-256). Read-only.

    Checks the chain up to the head as read when the walk starts; events appended
    meanwhile are left for the next run. The head and every event up to it are
    committed together, so the prefix is complete unless rows were deleted.
    """
    walk = _Walk(key)
    head = await _head(session)
    walk.pending = int(await session.scalar(select(func.count()).select_from(AuditOutbox)) or 0)
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.seq <= head.seq)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=_BATCH)
    )
    stream = await session.stream_scalars(stmt)
    async for row in stream:
        bad = walk.check(row)
        if bad is not None:
            await stream.close()
            return walk.report(head, *bad)
    last = walk.expected - 1
    if last < head.seq:
        why = f"event(s) {walk.expected}..{head.seq} missing (deleted from the tail)"
        return walk.report(head, walk.expected, why)
    if head.hash != walk.prev:
        return walk.report(head, last, "the chain head's hash differs from the last event's")
    # Anything past the head: a legitimate writer moves the head in the transaction
    # that adds the event, so a head read *after* the max seq is at least that seq.
    beyond = await session.scalar(select(func.max(AuditEvent.seq)))
    later = await _head(session)
    if beyond is not None and beyond > later.seq:
        why = f"event(s) after the chain head (seq {later.seq}) were inserted"
        return walk.report(head, later.seq + 1, why)
    if walk.latest_purged is not None:
        purged_ts, purged_seq = walk.latest_purged
        if walk.latest_cutoff is None or _aware(purged_ts) >= _aware(walk.latest_cutoff):
            return walk.report(head, purged_seq, "text was purged, but no audited retention run covers this event")
    return walk.report(head)


async def _head(session: AsyncSession) -> AuditChainHead:
    head = await session.get(AuditChainHead, 1, populate_existing=True)
    if head is None:
        raise RuntimeError("audit_chain_head has no row 1: the database was not migrated")
    return head


@dataclass(frozen=True, slots=True)
class EventCheck:
    """One event checked on its own (the full walk is :func:`verify_chain`)."""

    hash_ok: bool
    content_ok: bool | None  # None: text purged by retention, nothing to compare
    links_to_previous: bool
    problem: str | None


async def check_event(session: AsyncSession, key: ChainKey, seq: int) -> EventCheck | None:
    """Check event ``seq`` alone; None when it does not exist."""
    row = await session.get(AuditEvent, seq)
    if row is None:
        return None
    prev_hash = GENESIS_HASH
    if seq > 1:
        prev = await session.get(AuditEvent, seq - 1)
        prev_hash = prev.hash if prev is not None else "(missing)"
    links = row.prev_hash == prev_hash
    row_key = key_for_alg(row.alg, key)
    if row_key is None:
        return EventCheck(False, None, links, f"written under key {row.alg!r}, not held here")
    hash_ok = body_of(row).hash(row_key) == row.hash
    content_ok = (
        None
        if row.content_purged_at is not None
        else content_digest(row_key, row.prompt, row.answer) == row.content_digest
    )
    problems = [
        text
        for ok, text in (
            (hash_ok, "hash does not match the event's fields"),
            (content_ok is not False, "text does not match its digest"),
            (links, "does not link to the previous event"),
        )
        if not ok
    ]
    return EventCheck(hash_ok, content_ok, links, "; ".join(problems) or None)
