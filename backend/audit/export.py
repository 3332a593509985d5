"""Rendering events as JSON Lines or CSV, one event at a time (for streamed exports)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Literal

import orjson

from backend.audit.chain import format_ts
from backend.audit.types import SHOWN_FIELDS, AuditEventView

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
