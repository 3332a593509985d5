"""Reading stored events without trusting them: every column decoded here, by us.

The database is the thing being audited, so a read must survive any row in it: a
payload that is not JSON (SQLite keeps JSON as text), a NaN or an infinity (which JSON
cannot spell, and which canonical JSON refuses), a timestamp that is not a date
(SQLite text, PostgreSQL ``infinity``), a number in a text column. Decoded by the
driver or the ORM, such a row raises in the middle of a page or a stream; here the
payload and the timestamps are fetched as *text* and decoded one row at a time, and a
row that does not decode becomes an :class:`AuditEventView` whose ``problem`` says
what is wrong (``kind`` for machines, a sentence for people). Every reader (pages,
single events, exports, verify) goes through :func:`event_columns` and :func:`decode`.
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, Text, cast, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from backend.audit.types import AuditEventView, Unreadable
from backend.db.models import AuditEvent, AuditOutbox

UNREADABLE_ROW = "unreadable_row"
BAD_TIMESTAMP = "bad_timestamp"


class _TimestampText(FunctionElement[str]):
    """A timestamp column as UTC ISO text, whatever the session's time zone or DateStyle."""

    type = Text()
    inherit_cache = True


@compiles(_TimestampText, "sqlite")
def _ts_sqlite(element: _TimestampText, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps what was written (text); SQLAlchemy writes naive UTC.
    return compiler.process(element.clauses, **kw)


@compiles(_TimestampText, "postgresql")
def _ts_postgresql(element: _TimestampText, compiler: SQLCompiler, **kw: Any) -> str:
    # +-infinity (which psycopg cannot load) comes back as the text 'infinity', which
    # does not parse: a bad timestamp, not a crash.
    column = compiler.process(element.clauses, **kw)
    iso = f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    return f"CASE WHEN isfinite({column}) THEN {iso} ELSE CAST({column} AS TEXT) END"


def _as_text(column: Any) -> ColumnElement[str]:
    # A real CAST: psycopg decodes json columns itself (a 1e999 would load as inf).
    return cast(column, Text)


def event_columns() -> Select[Any]:
    """SELECT of every audit_events column with payload and timestamps left undecoded.

    Add WHERE / ORDER BY as for ``select(AuditEvent)``; decode each row with :func:`decode`.
    """
    e = AuditEvent
    stmt = select(
        e.seq, _TimestampText(e.ts).label("ts"), e.request_id, e.action, e.outcome, e.status,
        e.user_id, e.user_email, e.team, e.channel, e.expert, e.reason,
        _as_text(e.payload).label("payload"), e.prompt, e.answer, e.content_digest,
        _TimestampText(e.content_purged_at).label("content_purged_at"), e.alg, e.prev_hash, e.hash,
    )  # fmt: skip
    return typing.cast("Select[Any]", stmt)


class _Bad(ValueError):
    def __init__(self, kind: str, problem: str) -> None:
        super().__init__(problem)
        self.kind = kind
        self.problem = problem


def _no_constant(name: str) -> object:
    raise _Bad(UNREADABLE_ROW, f"the payload holds {name}, which JSON has no spelling for")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Bad(UNREADABLE_ROW, f"the payload holds the number {text}, too large for a float")
    return value


def _payload(raw: object) -> Mapping[str, object]:
    if isinstance(raw, dict):  # a driver that decodes JSON itself
        return raw
    if not isinstance(raw, str | bytes):
        raise _Bad(UNREADABLE_ROW, f"the payload is a {type(raw).__name__}, not JSON text")
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except ValueError as exc:
        if isinstance(exc, _Bad):
            raise
        raise _Bad(UNREADABLE_ROW, f"the payload is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _Bad(UNREADABLE_ROW, f"the payload is JSON {type(value).__name__}, not an object")
    return value


def parse_ts(raw: object, column: str = "ts") -> datetime:
    """A stored timestamp (text, or a datetime from a driver) as an aware UTC datetime."""
    if isinstance(raw, datetime):
        ts = raw
    elif isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _Bad(BAD_TIMESTAMP, f"{column} {raw[:40]!r} is not a date and time") from None
    else:
        raise _Bad(BAD_TIMESTAMP, f"{column} is {'empty' if raw is None else type(raw).__name__}, not a date")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _int(row: Row[Any], name: str) -> int | None:
    value = getattr(row, name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _Bad(UNREADABLE_ROW, f"column {name} holds {value!r}, not a whole number")


def _str(row: Row[Any], name: str, *, required: bool = False) -> str | None:
    value = getattr(row, name)
    if isinstance(value, str) or (value is None and not required):
        return value
    raise _Bad(UNREADABLE_ROW, f"column {name} holds {value!r}, not text")


def decode(row: Row[Any]) -> AuditEventView:
    """The view of one row of :func:`event_columns`. Never raises: a row that does not
    decode comes back with ``problem`` set and the columns that could not be read
    empty (None, ``{}`` or ``""``)."""
    try:
        return _decode(row)
    except _Bad as bad:
        problem = Unreadable(bad.kind, bad.problem)
    # Salvage what reads on its own, so the reader sees which row this is.
    seq = row.seq if isinstance(row.seq, int) else -1
    try:
        ts: datetime | None = parse_ts(row.ts)
    except _Bad:
        ts = None

    def text(name: str) -> str | None:
        try:
            return _str(row, name)
        except _Bad:
            return None

    def number(name: str) -> int | None:
        try:
            return _int(row, name)
        except _Bad:
            return None

    return AuditEventView(
        seq=seq, ts=ts, request_id=text("request_id"), action=text("action") or "",
        outcome=text("outcome") or "", status=number("status"), user_id=number("user_id"),
        user_email=text("user_email"), team=text("team"), channel=text("channel") or "",
        expert=text("expert"), reason=text("reason"), payload={}, prompt=None, answer=None,
        content_digest=text("content_digest") or "", content_purged_at=None, alg=text("alg") or "",
        prev_hash=text("prev_hash") or "", hash=text("hash") or "", problem=problem,
    )  # fmt: skip


def _decode(row: Row[Any]) -> AuditEventView:
    seq = _int(row, "seq")
    assert seq is not None, "seq is the primary key"
    purged = row.content_purged_at
    return AuditEventView(
        seq=seq,
        ts=parse_ts(row.ts),
        request_id=_str(row, "request_id"),
        action=_str(row, "action", required=True) or "",
        outcome=_str(row, "outcome", required=True) or "",
        status=_int(row, "status"),
        user_id=_int(row, "user_id"),
        user_email=_str(row, "user_email"),
        team=_str(row, "team"),
        channel=_str(row, "channel", required=True) or "",
        expert=_str(row, "expert"),
        reason=_str(row, "reason"),
        payload=_payload(row.payload),
        prompt=_str(row, "prompt"),
        answer=_str(row, "answer"),
        content_digest=_str(row, "content_digest", required=True) or "",
        content_purged_at=None if purged is None else parse_ts(purged, "content_purged_at"),
        alg=_str(row, "alg", required=True) or "",
        prev_hash=_str(row, "prev_hash", required=True) or "",
        hash=_str(row, "hash", required=True) or "",
    )


@dataclass(frozen=True, slots=True)
class PendingRow:
    """One audit_outbox row, decoded: what the chainer hashes, seals and moves."""

    id: int
    ts: datetime
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
    seal: str


def outbox_columns() -> Select[Any]:
    """SELECT of every audit_outbox column with payload and timestamp left undecoded
    (decode each row with :func:`decode_pending`): one bad pending row must not stop
    the chainer from reading the others."""
    o = AuditOutbox
    stmt = select(
        o.id, _TimestampText(o.ts).label("ts"), o.request_id, o.action, o.outcome, o.status, o.user_id,
        o.user_email, o.team, o.channel, o.expert, o.reason, _as_text(o.payload).label("payload"),
        o.prompt, o.answer, o.content_digest, o.alg, o.seal,
    )  # fmt: skip
    return typing.cast("Select[Any]", stmt)


def decode_pending(row: Row[Any]) -> PendingRow | Unreadable:
    """The decoded outbox row, or what is wrong with it. Never raises."""
    try:
        return PendingRow(
            id=int(row.id),
            ts=parse_ts(row.ts),
            request_id=_str(row, "request_id"),
            action=_str(row, "action", required=True) or "",
            outcome=_str(row, "outcome", required=True) or "",
            status=_int(row, "status"),
            user_id=_int(row, "user_id"),
            user_email=_str(row, "user_email"),
            team=_str(row, "team"),
            channel=_str(row, "channel", required=True) or "",
            expert=_str(row, "expert"),
            reason=_str(row, "reason"),
            payload=_payload(row.payload),
            prompt=_str(row, "prompt"),
            answer=_str(row, "answer"),
            content_digest=_str(row, "content_digest", required=True) or "",
            alg=_str(row, "alg", required=True) or "",
            seal=_str(row, "seal", required=True) or "",
        )
    except _Bad as bad:
        return Unreadable(bad.kind, bad.problem)
