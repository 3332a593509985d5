"""Frozen values of the audit trail (no ORM rows cross this package's boundary)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from backend.audit.record import EVENT_FIELDS, EventFields
from backend.principal import Principal

TextPolicy = Literal["full", "redacted", "hash"]


class Outcome(StrEnum):
    """How the audited action ended (stable strings: they are filtered on and exported)."""

    OK = "ok"  # done (HTTP 2xx)
    REFUSED = "refused"  # the caller was refused: auth, permission, policy, bad input (4xx)
    ERROR = "error"  # we failed: an expert was down, an internal error (5xx)
    ABORTED = "aborted"  # the client went away before the answer was complete (499)

    @classmethod
    def for_status(cls, status: int) -> Outcome:
        if status < 400:
            return cls.OK
        if status == CLIENT_CLOSED:
            return cls.ABORTED
        return cls.REFUSED if status < 500 else cls.ERROR


CLIENT_CLOSED = 499  # the status nginx logs for it; never sent (the client is gone)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: a user through a channel, an operator on the CLI, or nobody known."""

    channel: str
    user_id: int | None = None
    email: str | None = None
    team: str | None = None
    roles: tuple[str, ...] = ()
    key_id: int | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(
            channel=principal.channel,
            user_id=principal.user_id,
            email=principal.email,
            team=principal.team,
            roles=tuple(sorted(principal.roles)),
            key_id=principal.key_id,
        )

    @classmethod
    def cli(cls, os_user: str) -> Actor:
        """An operator at the ``expertgate`` command line (trusted by shell access)."""
        return cls(channel="cli", email=f"cli:{os_user}", roles=("admin",))

    @classmethod
    def system(cls) -> Actor:
        return cls(channel="system", email="system")

    @classmethod
    def anonymous(cls, channel: str = "api") -> Actor:
        return cls(channel=channel)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One thing to record. ``payload`` must be JSON data (see canonical.py).

    ``prompt`` and ``answer`` are the raw texts; the trail stores them per its text
    policy (full, redacted or hash), never as given unless the policy is ``full``.
    """

    action: str
    outcome: Outcome
    actor: Actor
    request_id: str | None = None
    status: int | None = None
    expert: str | None = None
    reason: str | None = None
    payload: Mapping[str, object] = field(default_factory=dict)
    prompt: str | None = None
    answer: str | None = None


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Why a stored row could not be read (backend/audit/rows.py).

    ``kind``: ``unreadable_row`` (payload not JSON, NaN, a column of the wrong type) or
    ``bad_timestamp``; ``problem``: a sentence for the reader.
    """

    kind: str
    problem: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEventView(EventFields[datetime | None]):
    """One stored event, as read back: its fields (record.py), its chain position and
    the purge mark retention sets.

    ``problem`` is set when the row is corrupted: the fields that could not be read are
    then empty (``ts`` None, ``payload`` empty, no text). ``text_withheld``: prompt and
    answer were removed for this reader (docs/governance.md, "Restricted answers").
    """

    seq: int
    content_purged_at: datetime | None
    prev_hash: str
    hash: str
    problem: Unreadable | None = None
    text_withheld: bool = False


# The stored fields of an event in the order they are shown (API) and exported: that of
# the audit_events table, which keeps the purge mark beside the digest it concerns.
_AFTER_DIGEST = EVENT_FIELDS.index("content_digest") + 1
SHOWN_FIELDS: tuple[str, ...] = (
    "seq", *EVENT_FIELDS[:_AFTER_DIGEST], "content_purged_at", *EVENT_FIELDS[_AFTER_DIGEST:], "prev_hash", "hash",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An event as written to the outbox: durable, not yet (or just) chained.

    Its ``seq`` is assigned when it is chained; ``outbox_id`` is its place in the queue.
    """

    outbox_id: int
    ts: datetime
    action: str
    prompt: str | None
    answer: str | None
    content_digest: str


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events to read. Every field narrows; None means no condition.

    ``text`` matches case-insensitively inside the stored prompt or answer text (so it
    finds only what the text policy kept). ``user`` is an email, matched exactly.
    """

    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None
    user_id: int | None = None
    team: str | None = None
    expert: str | None = None
    outcome: str | None = None
    reason: str | None = None
    action: str | None = None
    request_id: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of walking the chain and checking the anchors.

    ``ok`` is False iff ``kind`` is set (one of verify.KINDS); ``first_bad_seq`` then
    names the event to blame, or is None when no single event is (a missing chain head,
    an edited anchor file). ``head_seq`` is -1 when the chain head row is missing.
    """

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    kind: str | None = None
    purged: int = 0
    pending: int = 0  # events in the outbox, not yet chained: not verified, not a failure
    anchors_checked: int = 0  # anchors (under this key) compared with the database
