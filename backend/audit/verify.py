"""Walking the chain: every event recomputed, in seq order, streamed (constant memory).

A report names the *first* bad sequence number and why:

- an edited row: its recomputed hash differs (any hashed field), or its prompt/answer
  no longer match the stored content digest;
- a deleted row: a gap in seq (the missing seq is named), or a tail shorter than the
  chain head says;
- an inserted row: its prev_hash does not link, its hash does not verify (HMAC), or it
  lies beyond the chain head;
- text removed outside retention: content missing without ``content_purged_at``, or
  purged at a time no audited retention run covers;
- a corrupted row (payload not JSON, a NaN, a timestamp that is not a date): named as
  unreadable (rows.py decodes every row without trusting it);
- a missing chain head row;
- a contradicted anchor (anchors.py): the event at an anchored seq has another hash, or
  the chain no longer reaches an anchored seq.

Nothing here raises on what it finds: every fault is a report with a ``kind`` (stable,
for machines: see :data:`KINDS`), the seq when one event is to blame, and a sentence.

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

from backend.audit.anchors import Anchor, AnchorLog, check_anchors
from backend.audit.chain import GENESIS_HASH, HMAC_PREFIX, SHA256, ChainKey, content_digest, key_for_alg
from backend.audit.chain import format_ts as _fmt
from backend.audit.rows import decode, event_columns
from backend.audit.types import AuditEventView, VerifyReport
from backend.audit.writer import body_of
from backend.db.models import AuditChainHead, AuditEvent, AuditOutbox

RETENTION_ACTION = "audit.retention"
_BATCH = 1000
# Every ``kind`` a report can carry (docs/governance.md, "Verifying").
KINDS = (
    "unreadable_row", "bad_timestamp", "hash_mismatch", "content_mismatch", "broken_link",
    "missing_event", "inserted_event", "unkeyed_event", "unknown_key", "purge_uncovered",
    "head_mismatch", "missing_head", "anchor_mismatch", "anchor_ahead", "anchor_bad_signature",
    "anchor_unreadable",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Fault:
    seq: int | None
    kind: str
    problem: str


class _Walk:
    def __init__(self, key: ChainKey, keyed_after: int | None = None) -> None:
        self.key = key
        # An anchor written by a keyed process: no unkeyed event may come after it.
        self.keyed_after = keyed_after
        self.expected = 1
        self.prev = GENESIS_HASH
        self.checked = 0
        self.purged = 0
        self.seen_hmac = False
        # The purged event with the latest timestamp, and the latest audited cutoff.
        self.latest_purged: tuple[datetime, int] | None = None
        self.latest_cutoff: datetime | None = None
        self.pending = 0
        self.anchors_checked = 0

    def check(self, row: AuditEventView) -> _Fault | None:
        """The fault if ``row`` breaks the chain; else advance past it."""
        if row.seq > self.expected:
            missing = (
                f"{self.expected}" if row.seq == self.expected + 1 else
                f"{self.expected}..{row.seq - 1}"
            )  # fmt: skip
            why = f"event(s) {missing} missing (deleted); the chain resumes at {row.seq}"
            return _Fault(self.expected, "missing_event", why)
        if row.problem is not None:
            return _Fault(row.seq, row.problem.kind, f"the row cannot be read: {row.problem.problem}")
        fault = self._problem(row)
        if fault is not None:
            return _Fault(row.seq, *fault)
        self.prev = row.hash
        self.expected = row.seq + 1
        self.checked += 1
        return None

    def _problem(self, row: AuditEventView) -> tuple[str, str] | None:
        if row.prev_hash != self.prev:
            return "broken_link", (
                "prev_hash does not link to the previous event "
                "(an event before it was altered, removed or this one was inserted)"
            )
        key = key_for_alg(row.alg, self.key)
        if row.alg.startswith(HMAC_PREFIX):
            self.seen_hmac = True
        elif self.seen_hmac:
            return "unkeyed_event", f"written with {row.alg!r} after keyed events (a forged, unkeyed insert)"
        elif row.alg == SHA256 and self.keyed_after is not None and row.seq > self.keyed_after:
            return "unkeyed_event", (
                f"written with {row.alg!r} after seq {self.keyed_after}, which a keyed process anchored "
                "(a forged, unkeyed insert)"
            )
        if key is None:
            return "unknown_key", (
                f"written under key {row.alg!r}, which this verifier does not hold "
                "(set EXPERTGATE_SECRET_KEY or EXPERTGATE_AUDIT_KEY_FILE to the key the chain was written with)"
            )
        assert row.ts is not None, "a readable row has a timestamp"
        if row.content_purged_at is None:
            if content_digest(key, row.prompt, row.answer) != row.content_digest:
                return "content_mismatch", "prompt/answer text does not match its digest (edited or removed)"
        else:
            if row.prompt is not None or row.answer is not None:
                return "content_mismatch", "marked purged but still holds text"
            self.purged += 1
            if self.latest_purged is None or row.ts > self.latest_purged[0]:
                self.latest_purged = (row.ts, row.seq)
        if body_of(row).hash(key) != row.hash:
            return "hash_mismatch", "hash does not match the event's fields (the row was edited)"
        if row.action == RETENTION_ACTION:
            cutoff = _cutoff(row.payload)
            if cutoff is not None and (self.latest_cutoff is None or cutoff > self.latest_cutoff):
                self.latest_cutoff = cutoff
        return None

    def report(self, head: AuditChainHead | None, fault: _Fault | None = None) -> VerifyReport:
        return VerifyReport(
            ok=fault is None,
            checked=self.checked,
            head_seq=head.seq if head is not None else -1,
            head_hash=head.hash if head is not None else "",
            first_bad_seq=fault.seq if fault else None,
            problem=fault.problem if fault else None,
            kind=fault.kind if fault else None,
            purged=self.purged,
            pending=self.pending,
            anchors_checked=self.anchors_checked,
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


async def verify_chain(session: AsyncSession, key: ChainKey, anchors: AnchorLog | None = None) -> VerifyReport:
    """Verify every event against ``key`` (and unkeyed events by SHA-256), then the
    recent ``anchors``. Read-only; never raises on what it finds (see the module).

    Checks the chain up to the head as read when the walk starts; events appended
    meanwhile are left for the next run. The head and every event up to it are
    committed together, so the prefix is complete unless rows were deleted.
    """
    recent, unreadable = anchors.recent() if anchors is not None else ([], [])
    keyed = [a.seq for a in recent if a.alg.startswith(HMAC_PREFIX) and a.signature_ok(key)]
    walk = _Walk(key, keyed_after=max(keyed) if keyed else None)
    walk.pending = int(await session.scalar(select(func.count()).select_from(AuditOutbox)) or 0)
    head = await _head(session)
    if head is None:
        why = "the chain head (audit_chain_head row 1) is missing: deleted, or the database was never migrated"
        return walk.report(None, _Fault(None, "missing_head", why))
    fault = await _walk(session, walk, head)
    if fault is None:
        fault = await _anchor_fault(session, walk, key, recent, head)
    if fault is None and unreadable:
        fault = _Fault(None, "anchor_unreadable", unreadable[0].problem)
    return walk.report(head, fault)


async def _walk(session: AsyncSession, walk: _Walk, head: AuditChainHead) -> _Fault | None:
    stmt = (
        event_columns().where(AuditEvent.seq <= head.seq).order_by(AuditEvent.seq).execution_options(yield_per=_BATCH)
    )
    stream = await session.stream(stmt)
    async for row in stream:
        fault = walk.check(decode(row))
        if fault is not None:
            await stream.close()
            return fault
    last = walk.expected - 1
    if last < head.seq:
        why = f"event(s) {walk.expected}..{head.seq} missing (deleted from the tail)"
        return _Fault(walk.expected, "missing_event", why)
    if head.hash != walk.prev:
        return _Fault(last, "head_mismatch", "the chain head's hash differs from the last event's")
    # Anything past the head: a legitimate writer moves the head in the transaction
    # that adds the event, so a head read *after* the max seq is at least that seq.
    beyond = await session.scalar(select(func.max(AuditEvent.seq)))
    later = await _head(session)
    if later is None:
        return _Fault(None, "missing_head", "the chain head (audit_chain_head row 1) was deleted during the check")
    if beyond is not None and beyond > later.seq:
        why = f"event(s) after the chain head (seq {later.seq}) were inserted"
        return _Fault(later.seq + 1, "inserted_event", why)
    if walk.latest_purged is not None:
        purged_ts, purged_seq = walk.latest_purged
        if walk.latest_cutoff is None or _aware(purged_ts) >= _aware(walk.latest_cutoff):
            why = "text was purged, but no audited retention run covers this event"
            return _Fault(purged_seq, "purge_uncovered", why)
    return None


async def _anchor_fault(
    session: AsyncSession, walk: _Walk, key: ChainKey, recent: list[Anchor], head: AuditChainHead
) -> _Fault | None:
    walk.anchors_checked = sum(1 for a in recent if a.alg == key.alg)
    found = await check_anchors(session, key, recent, head.seq)
    return None if found is None else _Fault(*found)


async def _head(session: AsyncSession) -> AuditChainHead | None:
    return await session.get(AuditChainHead, 1, populate_existing=True)


@dataclass(frozen=True, slots=True)
class EventCheck:
    """One event checked on its own (the full walk is :func:`verify_chain`)."""

    hash_ok: bool
    content_ok: bool | None  # None: text purged by retention, nothing to compare
    links_to_previous: bool
    problem: str | None


async def check_event(session: AsyncSession, key: ChainKey, seq: int) -> EventCheck | None:
    """Check event ``seq`` alone; None when it does not exist."""
    raw = (await session.execute(event_columns().where(AuditEvent.seq == seq))).first()
    if raw is None:
        return None
    row = decode(raw)
    prev_hash = GENESIS_HASH
    if seq > 1:
        prev = await session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq - 1))
        prev_hash = prev if prev is not None else "(missing)"
    links = row.prev_hash == prev_hash
    if row.problem is not None:
        return EventCheck(False, None, links, f"the row cannot be read: {row.problem.problem}")
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
