"""Rendering events as JSON Lines or CSV, one event at a time (for streamed exports)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Literal

import orjson

from backend.audit.chain import format_ts
from backend.audit.types import SHOWN_FIELDS, Actor, AuditEntry, AuditEventView, AuditFilter, Outcome
from backend.audit.writer import AuditTrail
from backend.db.session import Database

ExportFormat = Literal["jsonl", "csv"]
CSV_COLUMNS = (*SHOWN_FIELDS, "unreadable")


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return format_ts(value)
    return dict(value) if isinstance(value, Mapping) else value


def event_record(event: AuditEventView) -> dict[str, object]:
    """An event as JSON data: every stored field, so the export can be verified offline.

    ``unreadable`` is null, or says why the stored row could not be read."""
    record = {name: _json_value(getattr(event, name)) for name in SHOWN_FIELDS}
    # A corrupted row: exported as far as it reads, and marked (rows.py).
    record["unreadable"] = {"kind": event.problem.kind, "problem": event.problem.problem} if event.problem else None
    return record


def _csv_line(values: list[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


async def render(events: AsyncIterator[AuditEventView], fmt: ExportFormat) -> AsyncIterator[bytes]:
    """Encoded lines, one per event (CSV starts with a header line)."""
    if fmt == "csv":
        yield _csv_line(list(CSV_COLUMNS)).encode()
    async for event in events:
        record = event_record(event)
        if fmt == "jsonl":
            yield orjson.dumps(record) + b"\n"
        else:
            record["payload"] = orjson.dumps(record["payload"]).decode()
            record["unreadable"] = f"{event.problem.kind}: {event.problem.problem}" if event.problem else None
            yield _csv_line([_csv_cell(record[c]) for c in CSV_COLUMNS]).encode()


def _csv_cell(value: object) -> object:
    # A cell starting with = + - @ is a formula to spreadsheet apps (CSV injection);
    # prefix it with a quote so user text opens as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


EXPORTED = "audit.exported"


async def record_export(db: Database, trail: AuditTrail, actor: Actor, fmt: ExportFormat, flt: AuditFilter) -> None:
    """Audit an export before its first byte leaves (``audit.exported``): the API and
    ``expertgate audit export`` both call this, so both leave the same event."""
    await trail.record(
        db,
        AuditEntry(
            action=EXPORTED, outcome=Outcome.OK, actor=actor, status=200,
            payload={"format": fmt, "filter": filter_payload(flt)},
        ),
    )  # fmt: skip


def filter_payload(flt: AuditFilter) -> dict[str, object]:
    return {
        name: (value.isoformat() if isinstance(value, datetime) else value)
        for name, value in (
            ("since", flt.since),
            ("until", flt.until),
            ("user", flt.user),
            ("team", flt.team),
            ("expert", flt.expert),
            ("outcome", flt.outcome),
            ("reason", flt.reason),
            ("action", flt.action),
            ("request_id", flt.request_id),
            ("text", flt.text),
        )
        if value is not None
    }
