"""The audit chain on real PostgreSQL: concurrent writers never fork it, verify runs
beside writers, exports stream through a server-side cursor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import func, select

from backend.audit.chain import ChainKey
from backend.audit.query import stream_events
from backend.audit.types import Actor, AuditEntry, AuditFilter, Outcome
from backend.audit.verify import verify_chain
from backend.audit.writer import AuditTrail
from backend.db.models import AuditEvent
from backend.db.session import Database, migrate
from backend.guard.policy import PiiGuard
from backend.settings import to_async_url

pytestmark = pytest.mark.integration

KEY = ChainKey(b"integration-test-secret-key-0123")
ACTOR = Actor(channel="api", user_id=1, email="dana@example.com", team="platform")


@pytest.fixture
async def dbs(pg_url: str) -> AsyncIterator[list[Database]]:
    """Four independent engines (as four API replicas would have) on one migrated DB."""
    url = to_async_url(pg_url)
    migrate(url)
    databases = [Database(url) for _ in range(4)]
    yield databases
    for db in databases:
        await db.dispose()


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        action="chat.completion", outcome=Outcome.OK, actor=ACTOR, request_id=f"r{n}",
        status=200, expert="code", reason="routed", payload={"n": n},
        prompt=f"prompt {n}", answer=f"answer {n}",
    )  # fmt: skip


async def test_concurrent_writers_on_postgres_never_fork_the_chain(dbs: list[Database]) -> None:
    trail = AuditTrail(KEY, "redacted", PiiGuard())
    per_task, tasks_per_db = 10, 8

    async def writer(db: Database, w: int) -> None:
        for i in range(per_task):
            await trail.record(db, entry(w * 1000 + i))

    await asyncio.gather(*(writer(db, d * 100 + t) for d, db in enumerate(dbs) for t in range(tasks_per_db)))
    total = len(dbs) * tasks_per_db * per_task
    async with dbs[0].session() as s:
        rows = (
            await s.execute(select(AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash).order_by(AuditEvent.seq))
        ).all()
        report = await verify_chain(s, KEY)
    assert [r.seq for r in rows] == list(range(1, total + 1))
    # A fork would show as two events claiming the same predecessor.
    assert len({r.prev_hash for r in rows}) == total
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, total))
    assert report.ok and report.checked == total and report.head_seq == total, report


async def test_verify_while_writers_append_sees_a_consistent_chain(dbs: list[Database]) -> None:
    trail = AuditTrail(KEY, "redacted", PiiGuard())
    for i in range(50):
        await trail.record(dbs[0], entry(i))
    stop = asyncio.Event()

    async def keep_writing(db: Database) -> int:
        n = 0
        while not stop.is_set():
            await trail.record(db, entry(n))
            n += 1
        return n

    writers = [asyncio.create_task(keep_writing(db)) for db in dbs[1:]]
    reports = []
    for _ in range(5):
        async with dbs[0].session() as s:
            reports.append(await verify_chain(s, KEY))
    stop.set()
    written = sum(await asyncio.gather(*writers))
    assert written > 0
    assert all(r.ok for r in reports), [r for r in reports if not r.ok]
    async with dbs[0].session() as s:
        final = await verify_chain(s, KEY)
    assert final.ok and final.checked == 50 + written


async def test_export_streams_through_a_server_side_cursor(dbs: list[Database], pg_url: str) -> None:
    trail = AuditTrail(KEY, "full", PiiGuard())
    n = 1500
    async with dbs[0].transaction() as s:
        for i in range(n):
            await trail.append(s, entry(i))
    seen = 0
    async with dbs[1].session() as s:
        events = stream_events(s, AuditFilter(), batch=100)
        first = await anext(events)
        assert first.seq == 1
        # While the stream is open, the database is serving it from a cursor, 100 rows
        # at a time: the last statement of that connection is a FETCH, not the SELECT
        # of the whole table.
        with psycopg.connect(pg_url) as probe:
            queries = [
                row[0]
                for row in probe.execute(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
            ]
        fetches = [q for q in queries if q.lstrip().upper().startswith("FETCH FORWARD")]
        assert fetches and all(int(q.split()[2]) <= 100 for q in fetches), queries
        seen = 1
        last = first.seq
        async for event in events:
            assert event.seq == last + 1
            last = event.seq
            seen += 1
        # Streamed rows do not pile up in the session.
        assert len(s.identity_map) < 200
    assert seen == n
    async with dbs[0].session() as s:
        assert await s.scalar(select(func.count()).select_from(AuditEvent)) == n
        assert (await verify_chain(s, KEY)).ok
