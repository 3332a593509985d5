"""The flag row of a request, as the chat recorder writes it with the request's audit
event (backend/chat/recorder.py).

:data:`INSERT_FLAG` is a prebuilt statement for the exchange's group commit
(backend/db/group_commit.py: rows of one statement name the same columns, which
:func:`flag_row` guarantees). :func:`write_flag` is for a transaction of its own
(a refused or failed request): it skips a row the request already has.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.writer import AuditTrail
from backend.db.models import SafetyFlag, utcnow
from backend.guard.safety import SafetyVerdict
from backend.principal import Principal

# The excerpt kept of the last user message (characters, after redaction: a cut never
# leaves half an e-mail address unredacted).
EXCERPT_CHARS = 2_000
INSERT_FLAG = insert(SafetyFlag)


def excerpt_of(text: str, trail: AuditTrail) -> str | None:
    """``text`` as the audit trail keeps free text (PII redacted unless the text policy
    is ``full``), cut to EXCERPT_CHARS; None when the policy is ``hash`` (the trail
    keeps no readable text, so neither does this)."""
    if trail.text_policy == "hash":
        return None
    kept = trail.redact_free_text(text)
    return kept if len(kept) <= EXCERPT_CHARS else kept[: EXCERPT_CHARS - 1] + "…"


def flag_row(
    verdict: SafetyVerdict | None, *, request_id: str, principal: Principal, expert: str, text: str, trail: AuditTrail
) -> dict[str, Any] | None:
    """The ``safety_flags`` row of a request whose verdict flagged a category, else None.
    ``expert``: the one the request was routed to (that answered, or would have);
    ``text``: its last user message."""
    if verdict is None or verdict.category is None:
        return None
    category = verdict.category
    return {
        "request_id": request_id,
        "created_at": utcnow(),
        "user_id": principal.user_id,
        "user_email": principal.email,
        "channel": principal.channel,
        "expert": expert,
        "category": category,
        "score": round(float(verdict.flagged[category]), 4),
        "action": verdict.action,
        "scores": {c: round(float(s), 4) for c, s in verdict.scores.items()},
        "rules": list(verdict.rules),
        "model": verdict.model[:64],
        "excerpt": excerpt_of(text, trail),
        "label": None,
        "labelled_by": None,
        "labelled_at": None,
    }


async def write_flag(session: AsyncSession, row: dict[str, Any]) -> None:
    """INSERT ``row`` in the session's transaction unless its request has a flag already
    (a request's exchange whose COMMIT reply was lost may have committed one before its
    failure is recorded): ON CONFLICT DO NOTHING, on PostgreSQL and SQLite alike."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(
        dialect.insert(SafetyFlag).values(**row).on_conflict_do_nothing(index_elements=["request_id"])
    )
