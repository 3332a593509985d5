"""Reading stored events without trusting them: every column decoded here, by us.

The database is the thing being audited, so a read must survive any row in it: a
payload that is not JSON (SQLite keeps JSON as text), a NaN or an infinity (which JSON
cannot spell, and which canonical JSON refuses), a timestamp that is not a date
(SQLite text, PostgreSQL ``infinity``), a number in a text column. Decoded by the
driver or the ORM, such a row raises in the middle of a page or a stream; here the
payload and the timestamps are fetched as *text*, every column is decoded one row at a
time as its SQL type (backend/db/models.py) says, and a row that does not decode
becomes an :class:`AuditEventView` whose ``problem`` says what is wrong (``kind`` for
machines, a sentence for people). Every reader (pages, single events, exports, verify)
goes through :func:`event_columns` and :func:`decode`.
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, Row, Select, Table, Text, cast, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from backend.audit.record import TEXT_FIELDS, EventFields
from backend.audit.types import SHOWN_FIELDS, AuditEventView, Unreadable
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


def _undecoded(model: type[AuditEvent | AuditOutbox]) -> Select[Any]:
    """SELECT of every column of ``model``, timestamps and JSON as text (see the module)."""
    columns: list[Any] = []
    for column in typing.cast(Table, model.__table__).columns:
        attribute = getattr(model, column.key)
        if isinstance(column.type, DateTime):
            attribute = _TimestampText(attribute).label(column.key)
        elif isinstance(column.type, JSON):
            attribute = _as_text(attribute).label(column.key)
        columns.append(attribute)
    return typing.cast("Select[Any]", select(*columns))


def event_columns() -> Select[Any]:
    """SELECT of every audit_events column with payload and timestamps left undecoded.

    Add WHERE / ORDER BY as for ``select(AuditEvent)``; decode each row with :func:`decode`.
    """
    return _undecoded(AuditEvent)


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


# Column readers: ``raw`` as _undecoded fetches it -> the value, or raise _Bad. One call
# per column per row (verify reads the whole chain): kept to one Python call each.


def _whole(column: str, nullable: bool, raw: object) -> int | None:
    if (raw is None and nullable) or (isinstance(raw, int) and not isinstance(raw, bool)):
        return raw
    raise _Bad(UNREADABLE_ROW, f"column {column} holds {raw!r}, not a whole number")


def _text(column: str, nullable: bool, raw: object) -> str | None:
    if isinstance(raw, str) or (raw is None and nullable):
        return raw
    raise _Bad(UNREADABLE_ROW, f"column {column} holds {raw!r}, not text")


def _timestamp(column: str, nullable: bool, raw: object) -> datetime | None:
    return None if raw is None and nullable else parse_ts(raw, column)


def _json(column: str, nullable: bool, raw: object) -> Mapping[str, object] | None:
    return None if raw is None and nullable else _payload(raw)


_Read = Callable[[object], Any]


def _reader(column: Column[Any]) -> _Read:
    """How to decode ``column``: as its SQL type and nullability say."""
    kind = column.type
    read = (
        _timestamp if isinstance(kind, DateTime)
        else _json if isinstance(kind, JSON)
        else _whole if isinstance(kind, Integer)
        else _text
    )  # fmt: skip
    return partial(read, column.key, bool(column.nullable))


def _readers(model: type[AuditEvent | AuditOutbox], names: tuple[str, ...]) -> tuple[tuple[str, _Read], ...]:
    # In the order of ``names``: of several bad columns, the first is the one named.
    columns = typing.cast(Table, model.__table__).c
    return tuple((name, _reader(columns[name])) for name in names)


def _decoded(row: Row[Any], readers: tuple[tuple[str, _Read], ...]) -> dict[str, Any]:
    return {name: read(getattr(row, name)) for name, read in readers}


def _empty(column: Column[Any]) -> object:
    """What a column that does not read shows in the view of a corrupted row."""
    if isinstance(column.type, DateTime) or column.nullable:
        return None
    if isinstance(column.type, JSON):
        return {}
    return -1 if isinstance(column.type, Integer) else ""


_EVENT_READERS = _readers(AuditEvent, SHOWN_FIELDS)
# Left empty in the view of a corrupted row even where they read: without its payload
# nobody can tell who may see the text (restricted.py), nor what the purge mark is worth.
_WITHHELD_WHEN_UNREADABLE = ("payload", *TEXT_FIELDS, "content_purged_at")


def decode(row: Row[Any]) -> AuditEventView:
    """The view of one row of :func:`event_columns`. Never raises: a row that does not
    decode comes back with ``problem`` set and the columns that could not be read
    empty (None, ``{}``, ``""``, seq -1)."""
    try:
        return AuditEventView(**_decoded(row, _EVENT_READERS))
    except _Bad as bad:
        problem = Unreadable(bad.kind, bad.problem)
    # Salvage what reads on its own, so the reader sees which row this is.
    columns = typing.cast(Table, AuditEvent.__table__).c
    salvaged: dict[str, Any] = {}
    for name, read in _EVENT_READERS:
        try:
            salvaged[name] = _empty(columns[name]) if name in _WITHHELD_WHEN_UNREADABLE else read(getattr(row, name))
        except _Bad:
            salvaged[name] = _empty(columns[name])
    return AuditEventView(**salvaged, problem=problem)


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRow(EventFields[datetime]):
    """One audit_outbox row, decoded: what the chainer hashes, seals and moves."""

    id: int
    seal: str


_PENDING_READERS = _readers(AuditOutbox, tuple(f.name for f in fields(PendingRow)))


def outbox_columns() -> Select[Any]:
    """SELECT of every audit_outbox column with payload and timestamp left undecoded
    (decode each row with :func:`decode_pending`): one bad pending row must not stop
    the chainer from reading the others."""
    return _undecoded(AuditOutbox)


def decode_pending(row: Row[Any]) -> PendingRow | Unreadable:
    """The decoded outbox row, or what is wrong with it. Never raises."""
    try:
        return PendingRow(**_decoded(row, _PENDING_READERS))
    except _Bad as bad:
        return Unreadable(bad.kind, bad.problem)
