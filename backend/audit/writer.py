"""Appending to the chain: :class:`AuditTrail` (one per process, built by the container).

Serialization. Every append starts with one statement,
``UPDATE audit_chain_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash``. On
PostgreSQL that takes the head row's lock until the transaction ends, and a concurrent
appender's UPDATE waits, then re-reads the committed row (READ COMMITTED), so it gets
the next seq and the hash just written: the chain cannot fork. On SQLite the UPDATE
takes the database write lock, which is held to commit. The lock is held from the
append to the commit, so callers append last, just before their transaction commits.

Text policy: ``full`` stores prompt and answer as given, ``redacted`` (the default)
stores them with PII replaced by placeholders, ``hash`` stores only a keyed digest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.canonical import normalize
from backend.audit.chain import ChainKey, EventBody, content_digest, text_digest
from backend.audit.types import AuditEntry, AuditEventView, TextPolicy
from backend.db.models import AuditChainHead, AuditEvent, utcnow
from backend.db.session import Database
from backend.settings import Settings, SettingsError

log = logging.getLogger(__name__)

_RECORDED = "_expertgate_audited"
MIN_SECRET_CHARS = 16
_EVENTS = cast(Table, AuditEvent.__table__)
_HEAD = cast(Table, AuditChainHead.__table__)


class TextRedactor(Protocol):
    def redact(self, text: str) -> str: ...


_COLUMNS = tuple(c.name for c in _EVENTS.columns)


class _Statements:
    """The append statements, built once per trail (building them is most of the
    Python cost of an append); values travel as bound parameters."""

    def __init__(self) -> None:
        head_id = _HEAD.c.id == 1
        self.lock_head = update(_HEAD).where(head_id).values(seq=_HEAD.c.seq + 1).returning(_HEAD.c.seq, _HEAD.c.hash)
        self.insert_event = insert(_EVENTS)
        self.move_head = update(_HEAD).where(head_id).values(hash=bindparam("new_hash"))
        inserted = (
            insert(_EVENTS).values({c: bindparam(f"v_{c}") for c in _COLUMNS}).returning(_EVENTS.c.hash).cte("inserted")
        )
        self.insert_and_move_head = update(_HEAD).where(head_id).values(hash=select(inserted.c.hash).scalar_subquery())


def mark_recorded(exc: BaseException) -> None:
    """Note that ``exc`` has been audited already, so outer layers do not record it twice."""
    setattr(exc, _RECORDED, True)


def is_recorded(exc: BaseException) -> bool:
    return bool(getattr(exc, _RECORDED, False))


class AuditTrail:
    """Writes audit events. Stateless between calls; safe to share across requests."""

    def __init__(
        self,
        key: ChainKey,
        text_policy: TextPolicy,
        redactor: TextRedactor,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.key = key
        self.text_policy: TextPolicy = text_policy
        self._redactor = redactor
        self._clock = clock
        self._sql = _Statements()

    def stored_text(self, text: str | None) -> str | None:
        """``text`` as the text policy stores it."""
        if text is None:
            return None
        if self.text_policy == "full":
            return text
        if self.text_policy == "redacted":
            return self._redactor.redact(text)
        return text_digest(self.key, text)

    def redact_free_text(self, text: str) -> str:
        """Free text that lands in a payload (error messages): PII redacted unless the
        policy is ``full``. Never hashed: an error message has to stay readable."""
        return text if self.text_policy == "full" else self._redactor.redact(text)

    async def append(self, session: AsyncSession, entry: AuditEntry) -> AuditEventView:
        """Add ``entry`` as the next event of the chain, in the caller's transaction.

        Flushes, never commits. Holds the chain lock until the caller's commit, so call
        it as the last write of the transaction. The CPU work (redaction, digests,
        canonical JSON) happens before the lock is taken, and the append itself is
        three Core statements (lock the head, insert the event, move the head), or two
        on PostgreSQL. Raises TypeError/ValueError when the payload is not JSON data.
        """
        payload: dict[str, Any] = normalize(dict(entry.payload))  # type: ignore[assignment]
        prompt = self.stored_text(entry.prompt)
        answer = self.stored_text(entry.answer)
        digest = content_digest(self.key, prompt, answer)
        await session.flush()  # the caller's own rows first: the lock is held from here on
        row = (await session.execute(self._sql.lock_head)).one()
        actor = entry.actor
        body = EventBody(
            seq=int(row[0]),
            ts=self._clock(),
            request_id=entry.request_id,
            action=entry.action,
            outcome=str(entry.outcome),
            status=entry.status,
            user_id=actor.user_id,
            user_email=actor.email,
            team=actor.team,
            channel=actor.channel,
            expert=entry.expert,
            reason=entry.reason,
            payload=payload,
            content_digest=digest,
            alg=self.key.alg,
            prev_hash=str(row[1]),
        )
        view = AuditEventView(
            seq=body.seq,
            ts=body.ts,
            request_id=body.request_id,
            action=body.action,
            outcome=body.outcome,
            status=body.status,
            user_id=body.user_id,
            user_email=body.user_email,
            team=body.team,
            channel=body.channel,
            expert=body.expert,
            reason=body.reason,
            payload=payload,
            prompt=prompt,
            answer=answer,
            content_digest=digest,
            content_purged_at=None,
            alg=body.alg,
            prev_hash=body.prev_hash,
            hash=body.hash(self.key),
        )
        values = {name: getattr(view, name) for name in _COLUMNS}
        if session.get_bind().dialect.name == "postgresql":
            # One round trip: the insert rides in a CTE of the head update.
            await session.execute(self._sql.insert_and_move_head, {f"v_{k}": v for k, v in values.items()})
        else:
            await session.execute(self._sql.insert_event, values)
            await session.execute(self._sql.move_head, {"new_hash": view.hash})
        return view

    async def record(self, db: Database, entry: AuditEntry) -> AuditEventView:
        """Append ``entry`` in a transaction of its own, committed before returning.

        For events that belong to no other transaction: refused or failed requests,
        authentication failures, CLI actions.
        """
        async with db.transaction() as session:
            return await self.append(session, entry)


def to_view(row: AuditEvent) -> AuditEventView:
    payload: Mapping[str, object] = row.payload if isinstance(row.payload, dict) else {}
    return AuditEventView(
        seq=row.seq,
        ts=row.ts,
        request_id=row.request_id,
        action=row.action,
        outcome=row.outcome,
        status=row.status,
        user_id=row.user_id,
        user_email=row.user_email,
        team=row.team,
        channel=row.channel,
        expert=row.expert,
        reason=row.reason,
        payload=payload,
        prompt=row.prompt,
        answer=row.answer,
        content_digest=row.content_digest,
        content_purged_at=row.content_purged_at,
        alg=row.alg,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def body_of(row: AuditEvent) -> EventBody:
    """The hashed fields of a stored row (for verification)."""
    return EventBody(
        seq=row.seq,
        ts=row.ts,
        request_id=row.request_id,
        action=row.action,
        outcome=row.outcome,
        status=row.status,
        user_id=row.user_id,
        user_email=row.user_email,
        team=row.team,
        channel=row.channel,
        expert=row.expert,
        reason=row.reason,
        payload=row.payload if isinstance(row.payload, dict) else {"_not_an_object": row.payload},
        content_digest=row.content_digest,
        alg=row.alg,
        prev_hash=row.prev_hash,
    )


def build_audit_trail(settings: Settings, redactor: TextRedactor) -> AuditTrail:
    """The trail the settings ask for. Raises SettingsError for a too-short secret key."""
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    if secret is not None and len(secret) < MIN_SECRET_CHARS:
        raise SettingsError(
            f"EXPERTGATE_SECRET_KEY: at least {MIN_SECRET_CHARS} characters are needed "
            "to key the audit chain (use 32+ random bytes, e.g. `openssl rand -hex 32`)"
        )
    key = ChainKey(secret.encode("utf-8") if secret else None)
    return AuditTrail(key, settings.audit_text, redactor)
