"""Fault injection on the audit trail on real PostgreSQL (issue 25, item 8).

PostgreSQL refuses invalid JSON and impossible dates on write, but it stores what the
driver cannot turn into Python: a ``json`` number too large for a float, and
``infinity`` timestamps (psycopg raises on reading them). Both, a missing chain head
and a truncated anchored tail, written with raw SQL: verify reports a finding, the
readers mark the row, nothing raises.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from backend.audit.anchors import AnchorLog
from backend.audit.chain import ChainKey
from backend.audit.query import get_event, page
from backend.audit.types import Actor, AuditEntry, AuditFilter, Outcome
from backend.audit.verify import verify_chain
from backend.audit.writer import AuditTrail
from backend.db.session import Database
from backend.guard.policy import PiiGuard

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

KEY = ChainKey(b"integration-faults-key-0123456789")


async def three_events(db: Database) -> AuditTrail:
    trail = AuditTrail(KEY, "redacted", PiiGuard())
    for n in range(3):
        await trail.record(db, AuditEntry(action="a", outcome=Outcome.OK, actor=Actor.system(), request_id=f"r{n}"))
    return trail


async def run_sql(db: Database, *statements: str) -> None:
    async with db.transaction() as s:
        for sql in statements:
            await s.execute(text(sql))


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("UPDATE audit_events SET payload = '{\"n\": 1e999}' WHERE seq = 2", "unreadable_row"),
        ("UPDATE audit_events SET ts = 'infinity' WHERE seq = 2", "bad_timestamp"),
        ("UPDATE audit_events SET content_purged_at = '-infinity' WHERE seq = 2", "bad_timestamp"),
    ],
)
async def test_unreadable_rows_are_findings_and_marked(db: Database, sql: str, kind: str) -> None:
    await three_events(db)
    await run_sql(db, sql)
    async with db.session() as s:
        report = await verify_chain(s, KEY)
        listed = await page(s, AuditFilter(), limit=10)
        single = await get_event(s, 2)
    assert not report.ok and report.first_bad_seq == 2 and report.kind == kind, report
    assert [e.seq for e in listed.events] == [3, 2, 1]
    assert listed.events[1].problem is not None and listed.events[1].problem.kind == kind
    assert listed.events[0].problem is None
    assert single is not None and single.problem is not None


async def test_missing_head_is_a_finding(db: Database) -> None:
    await three_events(db)
    await run_sql(db, "DELETE FROM audit_chain_head")
    async with db.session() as s:
        report = await verify_chain(s, KEY)
    assert not report.ok and report.kind == "missing_head" and report.first_bad_seq is None


async def test_truncation_behind_an_anchor_is_caught(db: Database, tmp_path: Path) -> None:
    await three_events(db)
    anchors = AnchorLog(tmp_path / "anchors.jsonl", KEY)
    assert (await anchors.anchor(db)) is not None
    await run_sql(
        db,
        "DELETE FROM audit_events WHERE seq = 3",
        "UPDATE audit_chain_head SET seq = 2, hash = (SELECT hash FROM audit_events WHERE seq = 2)",
    )
    async with db.session() as s:
        assert (await verify_chain(s, KEY)).ok  # the chain alone cannot tell
        report = await verify_chain(s, KEY, anchors)
    assert not report.ok and report.kind == "anchor_ahead" and report.first_bad_seq == 3
