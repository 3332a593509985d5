"""The fields of one audit event, listed once: :class:`EventFields`.

Every form of the event reuses this list instead of repeating it: the hashed body
(chain.py ``EventBody``), the pending outbox row (rows.py ``PendingRow``), the event as
read back (types.py ``AuditEventView``), and through them the decoding of stored rows,
the API schema and the exports. Each adds only what is its own (a chain position, an
outbox id and seal, a purge mark).

To add a field: add it here, add its column to ``AuditEventColumns`` in
backend/db/models.py (the SQL side: lengths, nullability; tests/backend/audit/test_audit_record.py
holds the two in step), and write the migration that adds it to ``audit_events`` and
``audit_outbox``; it is then stored, read, served and exported. A hashed field also
changes the canonical bytes of the events already stored (they would gain the key):
it needs a new event hash domain in chain.py, the old one kept for the older events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

# The type of ``ts``: a datetime, except in an event read back from a row whose stored
# timestamp does not parse (types.py, AuditEventView), which has none.
TS = TypeVar("TS", bound=datetime | None)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFields(Generic[TS]):
    """One audit event's fields, in the order of the columns of ``audit_events``.

    All are hashed into the chain except :data:`TEXT_FIELDS`, which ``content_digest``
    covers instead (so retention can drop the text and the chain still verifies).
    """

    ts: TS
    request_id: str | None
    action: str
    outcome: str
    status: int | None
    user_id: int | None
    user_email: str | None
    team: str | None
    channel: str
    expert: str | None
    reason: str | None
    payload: Mapping[str, object]
    prompt: str | None
    answer: str | None
    content_digest: str
    alg: str

    def columns(self) -> dict[str, Any]:
        """The fields of :class:`EventFields` (not a subclass's own) by name, as stored."""
        return {name: getattr(self, name) for name in EVENT_FIELDS}


EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EventFields))
TEXT_FIELDS = ("prompt", "answer")
HASHED_FIELDS: tuple[str, ...] = tuple(name for name in EVENT_FIELDS if name not in TEXT_FIELDS)
