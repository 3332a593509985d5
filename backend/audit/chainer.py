"""Chaining: moving pending events from the outbox into the hash chain, in batches.

Why an outbox. A request's audit event is written with one INSERT into
``audit_outbox``, in the request's own transaction: no lock, so concurrent requests
never queue behind each other on the chain head, and the event is exactly as durable
as the request's rows (both commit or neither). Giving it its place in the chain
(``seq``, ``prev_hash``, ``hash``) needs the single chain head, so it is serialized;
that happens here, a batch at a time: one lock, one multi-row INSERT into
``audit_events``, one DELETE from the outbox and one head update per batch, in one
transaction. An event is therefore either pending (in the outbox) or chained (in
``audit_events``), never both and never neither.

Serialization. :func:`chain_batch` starts with
``UPDATE audit_chain_head SET seq = seq WHERE id = 1 RETURNING seq, hash``. On
PostgreSQL the row lock is held to commit; a chainer in another process waits on it
and then (READ COMMITTED: each statement sees what was committed before it started)
reads an outbox from which the rows just chained are gone and a head that names the
last of them. No row is chained twice and the chain cannot fork. On SQLite the UPDATE
takes the database write lock, with the same effect.

Who chains:

- API processes run :meth:`AuditChainer.run` as a background task. The commit of a
  transaction that enqueued wakes it; it waits a short window (:data:`WINDOW_S`, so
  that a batch gathers), then drains. It also looks every ``interval_s`` for rows it was not woken
  for: enqueued by another process, or left by one that crashed. It drains at
  startup, and the lifespan drains once more at shutdown.
- Processes without a chainer (CLI, Celery worker) chain in the writing transaction
  (see :class:`backend.audit.writer.AuditTrail`).

Seals. Each pending row carries a keyed digest of its fields (``EventBody.seal``).
A row whose seal does not verify was inserted or altered in the outbox by someone
without the key; it is not chained as written: an ``audit.rejected`` event naming its
outbox id takes its place, so the attempt itself is on the record.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import replace
from typing import Any, cast

import anyio
from sqlalchemy import Row, Table, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.anchors import AnchorLog, HeadMissing
from backend.audit.chain import ChainKey, EventBody, content_digest
from backend.audit.rows import PendingRow, decode_pending, outbox_columns
from backend.audit.types import AuditEventView, Unreadable
from backend.db.models import AuditChainHead, AuditEvent, AuditOutbox, utcnow
from backend.db.session import Database

log = logging.getLogger(__name__)

BATCH = 500
# How long a woken chainer waits for more events before chaining: fewer, larger batches
# (each is a commit, an fsync on PostgreSQL) for a lag nobody waits on (readers of the
# audit log chain what is pending first). A batch costs about the same whatever its
# size (a lock, three statements, a commit): at 50 ms a lightly loaded process chained
# 2-3 events a batch; 250 ms saved about 1 CPU-ms per request there (docs/load.md item 20).
WINDOW_S = 0.25
REJECTED_ACTION = "audit.rejected"
_BAD_SEAL = "the pending event's seal does not verify (inserted or altered in the outbox)"


def _shown(value: object) -> str | None:
    """A claimed column of a rejected row, as text a reader can see (never raises)."""
    return None if value is None else str(value)[:320]


_EVENTS = cast(Table, AuditEvent.__table__)
_OUTBOX = cast(Table, AuditOutbox.__table__)
_HEAD = cast(Table, AuditChainHead.__table__)
_LOCK_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(seq=_HEAD.c.seq).returning(_HEAD.c.seq, _HEAD.c.hash)


def event_body(row: AuditEventView | PendingRow, *, seq: int, prev_hash: str) -> EventBody:
    """The body of a chained event or of a pending outbox row (at ``seq`` after
    ``prev_hash``; a pending row has no position yet: 0 and ""). A payload that is not a
    JSON object, which no writer of ours stores, is wrapped: it then fails verification
    (or its seal) instead of passing as some other event."""
    assert row.ts is not None, "only readable events have a body"
    values = row.columns()
    if not isinstance(row.payload, dict):
        values["payload"] = {"_not_an_object": row.payload}
    return EventBody(**values, seq=seq, prev_hash=prev_hash)


def _sealed(key: ChainKey, row: PendingRow, body: EventBody) -> bool:
    try:
        return hmac.compare_digest(body.seal(key), row.seal)
    except (TypeError, ValueError):  # a payload no writer of ours produced
        return False


def _rejection(key: ChainKey, row: Row[Any], problem: str = _BAD_SEAL) -> EventBody:
    """The event chained instead of an outbox row whose seal does not verify, or that
    does not even decode (``problem`` says which)."""
    return EventBody(
        seq=0,
        ts=utcnow(),
        request_id=None,
        action=REJECTED_ACTION,
        outcome="refused",
        status=None,
        user_id=None,
        user_email="system",
        team=None,
        channel="system",
        expert=None,
        reason=None,
        payload={
            "outbox_id": int(row.id),
            "problem": problem,
            "claimed": {
                "action": _shown(row.action),
                "request_id": _shown(row.request_id),
                "user_email": _shown(row.user_email),
            },
        },
        prompt=None,
        answer=None,
        content_digest=content_digest(key, None, None),
        alg=key.alg,
        prev_hash="",
    )


async def chain_batch(session: AsyncSession, key: ChainKey, limit: int = BATCH) -> int:
    """Chain up to ``limit`` pending events written under ``key``, oldest first.

    Runs in the caller's transaction and holds the chain lock until it commits.
    Returns how many outbox rows were consumed. Rows written under another key are
    left for a process that holds it. Raises HeadMissing without a chain head.
    """
    head = (await session.execute(_LOCK_HEAD)).first()
    if head is None:
        raise HeadMissing()
    stmt = outbox_columns().where(AuditOutbox.alg == key.alg).order_by(AuditOutbox.id).limit(limit)
    rows = (await session.execute(stmt)).all()
    if not rows:
        return 0
    seq, prev = int(head[0]), str(head[1])
    events: list[dict[str, object]] = []
    for row in rows:
        pending = decode_pending(row)
        if isinstance(pending, Unreadable):
            problem = f"the pending event does not decode: {pending.problem}"
            log.error("audit outbox row %s: %s; chained as %s", row.id, problem, REJECTED_ACTION)
            body = _rejection(key, row, problem)
        else:
            body = event_body(pending, seq=0, prev_hash="")
            if not _sealed(key, pending, body):
                log.error("audit outbox row %s has a bad seal: chained as %s", row.id, REJECTED_ACTION)
                body = _rejection(key, row)
        seq += 1
        body = replace(body, seq=seq, prev_hash=prev)
        prev = body.hash(key)
        position = {"seq": seq, "prev_hash": body.prev_hash, "hash": prev}
        events.append({**body.columns(), **position, "content_purged_at": None})
    await session.execute(insert(_EVENTS), events)
    await session.execute(delete(_OUTBOX).where(_OUTBOX.c.id.in_([row.id for row in rows])))
    await session.execute(update(_HEAD).where(_HEAD.c.id == 1).values(seq=seq, hash=prev))
    return len(rows)


async def chain_pending(db: Database, key: ChainKey, batch: int = BATCH) -> int:
    """Chain every pending event written under ``key``, a committed batch at a time.

    Returns how many were chained. Safe beside other chainers (they take turns on the
    head lock). The check for pending rows takes no lock, so an empty outbox costs
    one small read.
    """
    total = 0
    while True:
        async with db.session() as session:
            if await session.scalar(select(_OUTBOX.c.id).where(_OUTBOX.c.alg == key.alg).limit(1)) is None:
                return total
        async with db.transaction() as session:
            done = await chain_batch(session, key, batch)
        total += done
        if done < batch:
            return total


class AuditChainer:
    """The background chainer of one API process (see the module docstring).

    ``wake`` is set by the process's deferred AuditTrail when an enqueue commits. With
    ``anchors`` it also appends the signed chain head there (anchors.py): once its first
    drain is done, then every ``anchor_interval_s`` when the head moved, and at
    :meth:`settle` (shutdown).
    """

    def __init__(
        self,
        db: Database,
        key: ChainKey,
        wake: asyncio.Event,
        *,
        window_s: float = WINDOW_S,
        interval_s: float = 1.0,
        batch: int = BATCH,
        anchors: AnchorLog | None = None,
        anchor_interval_s: float = 300.0,
    ) -> None:
        self._db = db
        self._anchors = anchors
        self._anchor_interval_s = anchor_interval_s
        self._anchored_at: float | None = None
        self._key = key
        self._wake = wake
        self._window_s = window_s
        self._interval_s = interval_s
        self._batch = batch
        self._inflight: set[asyncio.Task[int]] = set()

    async def drain(self) -> int:
        """Chain everything pending now; returns how many events were chained.

        The work runs in a task of its own that a cancelled caller (shutdown, a client
        that went away) does not interrupt: cut off mid-transaction, its connection
        could go on holding the chain lock (on SQLite, the database's write lock) until
        it is collected. :meth:`settle` waits for such a drain.
        """
        task = asyncio.ensure_future(chain_pending(self._db, self._key, self._batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    async def drain_before_read(self) -> None:
        """Chain what is pending before a read, so that the read sees every committed
        event with its place. Without a chain head nothing can be chained: the read still
        serves what is chained so far (``audit verify`` reports the missing head)."""
        try:
            await self.drain()
        except HeadMissing as exc:
            log.error("audit: %s; reading the events chained so far", exc)

    async def run(self) -> None:
        """Drain, then again on every wake-up or ``interval_s``, until cancelled.

        A failed drain (database unreachable, a lock timeout) is logged and retried on
        the next round: the events wait, durable, in the outbox, and a crash of this
        task would take the whole app's task group down with it.
        """
        while True:
            try:
                await self.drain()
            except Exception:
                log.exception("audit chainer: chaining failed; retrying in %.1f s", self._interval_s)
                await anyio.sleep(self._interval_s)
                continue
            now = anyio.current_time()
            if self._anchored_at is None or now - self._anchored_at >= self._anchor_interval_s:
                self._anchored_at = now
                await self.anchor()
            with anyio.move_on_after(self._interval_s):
                await self._wake.wait()
            self._wake.clear()
            await anyio.sleep(self._window_s)

    async def settle(self) -> None:
        """Drain now (at shutdown; after a job where no :meth:`run` task lives).

        A failure is logged, not raised: the events stay in the outbox for the next
        drain, here or in any other process.
        """
        try:
            # A drain whose caller was cancelled may still be running: let it finish.
            for earlier in await asyncio.gather(*self._inflight, return_exceptions=True):
                if isinstance(earlier, Exception):
                    raise earlier
            chained = await self.drain()
        except Exception:
            log.exception("audit chainer: draining failed; pending events stay in the outbox")
            return
        if chained:
            log.info("audit chainer: chained %d pending events", chained)
        await self.anchor()

    async def anchor(self) -> None:
        """Append the chain head to the anchor file, if this chainer has one.

        A failure (disk full, no chain head) is logged, not raised, like a failed
        drain: the next round tries again, and verify reports a missing head itself.
        """
        if self._anchors is None:
            return
        try:
            await self._anchors.anchor(self._db)
        except (OSError, HeadMissing, SQLAlchemyError) as exc:
            log.error("audit chainer: could not anchor the chain head in %s: %s", self._anchors.path, exc)
