"""Writing events: :class:`AuditTrail` (one per process, built by the runtime).

An append writes the event to the outbox (``audit_outbox``) in the caller's
transaction: the event's fields, its text as the policy stores it, the content digest
and a seal (a keyed digest of all of it), but no chain position. What happens next
depends on the process:

- ``deferred`` (API processes): nothing more. One INSERT, no lock; the process's
  :class:`backend.audit.chainer.AuditChainer`, woken through :attr:`AuditTrail.enqueued`,
  chains the event in a batch as soon as the caller commits.
- otherwise (CLI commands, Celery tasks: short-lived, no background task): the
  pending events are chained in the same transaction, holding the chain lock until
  the caller commits, so the command's event is in the chain when it exits.

Either way the event commits with the caller's rows or not at all, and chaining (the
only writer of ``audit_events``) is serialized on the chain head (see chainer.py).

Text policy: ``full`` stores prompt and answer as given, ``redacted`` (the default)
stores them with PII replaced by placeholders, ``hash`` stores only a keyed digest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from backend.audit.anchors import AnchorLog
from backend.audit.canonical import normalize
from backend.audit.chain import ChainKey, EventBody, content_digest, text_digest
from backend.audit.chainer import BATCH, chain_batch, event_body
from backend.audit.keyfile import MIN_SECRET_CHARS, load_or_create_key
from backend.audit.types import AuditEntry, AuditEventView, QueuedEvent, TextPolicy
from backend.db.models import AuditOutbox, utcnow
from backend.db.session import Database
from backend.db.writes import Rows
from backend.settings import Settings, SettingsError

log = logging.getLogger(__name__)

_RECORDED = "_expertgate_audited"
_OUTBOX = cast(Table, AuditOutbox.__table__)
_WAKE_ON_COMMIT = "expertgate.audit.wake_on_commit"


class TextRedactor(Protocol):
    def redact(self, text: str) -> str: ...


def mark_recorded(exc: BaseException) -> None:
    """Note that ``exc`` has been audited already, so outer layers do not record it twice."""
    setattr(exc, _RECORDED, True)


def is_recorded(exc: BaseException) -> bool:
    return bool(getattr(exc, _RECORDED, False))


class AuditTrail:
    """Writes audit events. Stateless between calls; safe to share across requests.

    ``deferred``: leave chaining to the process's AuditChainer (see the module).
    ``anchors``: where this deployment's signed chain heads go (anchors.py); None in
    tests that build a bare trail.
    """

    def __init__(
        self,
        key: ChainKey,
        text_policy: TextPolicy,
        redactor: TextRedactor,
        clock: Callable[[], datetime] = utcnow,
        *,
        deferred: bool = False,
        anchors: AnchorLog | None = None,
    ) -> None:
        self.key = key
        self.anchors = anchors
        self.text_policy: TextPolicy = text_policy
        self.deferred = deferred
        # Set when a transaction holding a deferred enqueue commits; the chainer waits on
        # it and clears it.
        self.enqueued = asyncio.Event()
        self._redactor = redactor
        self._clock = clock
        self._insert = insert(_OUTBOX)

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

    async def append(self, session: AsyncSession, entry: AuditEntry) -> QueuedEvent:
        """Write ``entry`` to the outbox in the caller's transaction. Never commits.

        Deferred: one INSERT, no lock; the chainer gives it its place after the
        commit. Otherwise the pending events are chained here too and the chain lock
        is held until the caller's commit, so call it as the last write (in a group
        commit, a trail that is not deferred holds it for the rest of the batch). The CPU work
        (redaction, digests, canonical JSON) is done before any statement. Raises
        TypeError/ValueError when the payload is not JSON data.
        """
        values = self._outbox_row(entry)
        result = cast(CursorResult[Any], await session.execute(self._insert, values))
        key = result.inserted_primary_key
        assert key is not None, "an INSERT of one row has a primary key"
        outbox_id = int(key[0])
        if self.deferred:
            self._wake_after_commit(session)
        else:
            await session.flush()  # the caller's own rows first: the lock is held from here on
            while await chain_batch(session, self.key) == BATCH:
                pass
        return QueuedEvent(
            outbox_id=outbox_id,
            ts=values["ts"],
            action=values["action"],
            prompt=values["prompt"],
            answer=values["answer"],
            content_digest=values["content_digest"],
        )

    async def append_later(self, session: AsyncSession, entry: AuditEntry, rows: Rows) -> None:
        """Leave ``entry``'s outbox row in ``rows``, which the caller INSERTs (with other
        requests' rows) before its transaction commits: see backend/db/group_commit.py.

        A trail that is not deferred chains inside the transaction, which needs the row
        written first: it appends at once instead.
        """
        if not self.deferred:
            await self.append(session, entry)
            return
        rows.add(self._insert, self._outbox_row(entry))
        self._wake_after_commit(session)

    def _outbox_row(self, entry: AuditEntry) -> dict[str, Any]:
        """The sealed outbox row of ``entry`` (redaction, digests, canonical JSON, seal).
        Raises TypeError/ValueError when the payload is not JSON data."""
        payload: dict[str, Any] = normalize(dict(entry.payload))  # type: ignore[assignment]
        prompt = self.stored_text(entry.prompt)
        answer = self.stored_text(entry.answer)
        actor = entry.actor
        body = EventBody(
            seq=0,
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
            prompt=prompt,
            answer=answer,
            content_digest=content_digest(self.key, prompt, answer),
            alg=self.key.alg,
            prev_hash="",
        )
        return {**body.columns(), "seal": body.seal(self.key)}

    def _wake_after_commit(self, session: AsyncSession) -> None:
        """Set :attr:`enqueued` when ``session`` commits (once per transaction): woken
        earlier, the chainer could look before the row is visible and miss it."""
        sync = session.sync_session
        if sync.info.get(_WAKE_ON_COMMIT):
            return
        sync.info[_WAKE_ON_COMMIT] = True

        def wake(_: Session) -> None:
            sync.info.pop(_WAKE_ON_COMMIT, None)
            self.enqueued.set()

        event.listen(sync, "after_commit", wake, once=True)

    async def record(self, db: Database, entry: AuditEntry) -> QueuedEvent:
        """Append ``entry`` in a transaction of its own, committed before returning.

        For events that belong to no other transaction: refused or failed requests,
        authentication failures, CLI actions.
        """
        async with db.transaction() as session:
            return await self.append(session, entry)


def body_of(view: AuditEventView) -> EventBody:
    """The hashed fields of a stored event (for verification); it must be readable
    (``view.problem`` None)."""
    return event_body(view, seq=view.seq, prev_hash=view.prev_hash)


def build_audit_trail(settings: Settings, redactor: TextRedactor, *, deferred: bool = False) -> AuditTrail:
    """The trail the settings ask for; ``deferred`` where an AuditChainer runs (the API).

    The key is EXPERTGATE_SECRET_KEY when set, else the audit key file (created on first
    start: keyfile.py); the chain is never unkeyed. Raises SettingsError for a
    too-short secret key or an unreadable key file.
    """
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    if secret is not None and len(secret) < MIN_SECRET_CHARS:
        raise SettingsError(
            f"EXPERTGATE_SECRET_KEY: at least {MIN_SECRET_CHARS} characters are needed "
            "to key the audit chain (use 32+ random bytes, e.g. `openssl rand -hex 32`)"
        )
    raw = secret.encode("utf-8") if secret else load_or_create_key(settings.resolved_audit_key_file)
    key = ChainKey(raw)
    anchors = AnchorLog(settings.resolved_audit_anchor_file, key)
    return AuditTrail(key, settings.audit_text, redactor, deferred=deferred, anchors=anchors)
