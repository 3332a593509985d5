"""Rendering events as JSON Lines or CSV, one event at a time (for streamed exports)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Literal

import orjson

from backend.audit.chain import format_ts
from backend.audit.types import AuditEventView

ExportFormat = Literal["jsonl", "csv"]
CSV_COLUMNS = (
    "seq", "ts", "request_id", "action", "outcome", "status", "user_id", "user_email",
    "team", "channel", "expert", "reason", "payload", "prompt", "answer",
    "content_digest", "content_purged_at", "alg", "prev_hash", "hash", "unreadable",
)  # fmt: skip


def event_record(event: AuditEventView) -> dict[str, object]:
    """An event as JSON data: every stored field, so the export can be verified offline.

    ``unreadable`` is null, or says why the stored row could not be read."""
    return {
        "seq": event.seq,
        "ts": format_ts(event.ts) if event.ts else None,
        "request_id": event.request_id,
        "action": event.action,
        "outcome": event.outcome,
        "status": event.status,
        "user_id": event.user_id,
        "user_email": event.user_email,
        "team": event.team,
        "channel": event.channel,
        "expert": event.expert,
        "reason": event.reason,
        "payload": dict(event.payload),
        "prompt": event.prompt,
        "answer": event.answer,
        "content_digest": event.content_digest,
        "content_purged_at": (format_ts(event.content_purged_at) if event.content_purged_at else None),
        "alg": event.alg,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        # A corrupted row: exported as far as it reads, and marked (rows.py).
        "unreadable": ({"kind": event.problem.kind, "problem": event.problem.problem} if event.problem else None),
    }


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
