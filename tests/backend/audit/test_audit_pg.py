"""The audit chain on real PostgreSQL: concurrent writers never fork it, verify runs
beside writers, exports stream through a server-side cursor; the outbox: replica
processes with their own chainers lose nothing, a killed replica's events are chained
by the next, concurrent chainers chain each event once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from backend.audit.chain import ChainKey
from backend.audit.chainer import AuditChainer, chain_pending
from backend.audit.query import stream_events
from backend.audit.types import Actor, AuditEntry, AuditFilter, Outcome
from backend.audit.verify import verify_chain
from backend.audit.writer import AuditTrail
from backend.db.models import AuditEvent, AuditOutbox
from backend.db.session import Database, migrate
from backend.guard.policy import PiiGuard
from backend.settings import to_async_url

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

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


# -- the outbox: deferred writers in several processes, chainers, crashes -------------

ROOT = Path(__file__).resolve().parents[3]


def writer_process(url: str, name: str, count: int, ack: Path, *, chainer: bool = True) -> subprocess.Popen[bytes]:
    """An API replica's audit writing in its own OS process (audit_writer_process.py)."""
    args = [sys.executable, "-m", "tests.support.audit_writer_process", url, name, str(count), str(ack)]
    return subprocess.Popen([*args, *([] if chainer else ["--no-chainer"])], cwd=ROOT)


async def chained(db: Database) -> list[tuple[int, str | None, str, str]]:
    async with db.session() as s:
        rows = await s.execute(
            select(AuditEvent.seq, AuditEvent.request_id, AuditEvent.prev_hash, AuditEvent.hash).order_by(
                AuditEvent.seq
            )
        )
        return [(r.seq, r.request_id, r.prev_hash, r.hash) for r in rows]


async def outbox_size(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(AuditOutbox)) or 0)


def assert_one_unforked_chain(rows: list[tuple[int, str | None, str, str]]) -> None:
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert len({r[2] for r in rows}) == len(rows)  # a fork: two events with one predecessor
    assert all(rows[i][2] == rows[i - 1][3] for i in range(1, len(rows)))


async def test_replica_processes_with_their_own_chainers_lose_nothing_and_never_fork(
    dbs: list[Database], pg_url: str, tmp_path: Path
) -> None:
    url = to_async_url(pg_url)
    per_process, names = 60, ["a", "b", "c"]
    procs = [writer_process(url, n, per_process, tmp_path / f"{n}.ack") for n in names]
    # A fourth chainer in this process competes for the same outbox meanwhile.
    competitor = asyncio.create_task(AuditChainer(dbs[0], KEY, asyncio.Event(), interval_s=0.05).run())
    try:
        codes = await asyncio.gather(*(asyncio.to_thread(p.wait, 120) for p in procs))
    finally:
        competitor.cancel()
    assert codes == [0, 0, 0]
    acknowledged = {line for n in names for line in (tmp_path / f"{n}.ack").read_text().split()}
    assert len(acknowledged) == per_process * len(names)
    rows = await chained(dbs[1])
    assert_one_unforked_chain(rows)
    assert sorted(r[1] or "" for r in rows) == sorted(acknowledged)  # each exactly once
    assert await outbox_size(dbs[1]) == 0  # every process drained at shutdown
    async with dbs[1].session() as s:
        report = await verify_chain(s, KEY)
    assert report.ok and report.checked == len(acknowledged) and report.pending == 0, report


async def test_events_of_a_killed_replica_are_chained_by_the_next(
    dbs: list[Database], pg_url: str, tmp_path: Path
) -> None:
    url = to_async_url(pg_url)
    ack = tmp_path / "dead.ack"
    proc = writer_process(url, "dead", 0, ack)  # writes until killed, its chainer running
    for _ in range(600):
        await asyncio.sleep(0.05)
        if ack.exists() and len(ack.read_text().split()) >= 40:
            break
    proc.send_signal(signal.SIGKILL)  # no shutdown drain, transactions cut mid-flight
    proc.wait(30)
    acknowledged = set(ack.read_text().split())
    assert len(acknowledged) >= 40
    # Whatever its chainer had not reached is still in the outbox; a fresh replica's
    # chainer drains it at startup.
    task = asyncio.create_task(AuditChainer(dbs[2], KEY, asyncio.Event(), interval_s=3600).run())
    try:
        for _ in range(600):
            if await outbox_size(dbs[2]) == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert await outbox_size(dbs[2]) == 0
    rows = await chained(dbs[2])
    assert_one_unforked_chain(rows)
    ids = [r[1] for r in rows]
    assert len(ids) == len(set(ids))
    # Every acknowledged event is chained (a commit the kill cut short may add one more).
    assert acknowledged <= set(ids), sorted(acknowledged - set(ids))
    async with dbs[2].session() as s:
        assert (await verify_chain(s, KEY)).ok


async def test_a_dead_replicas_pending_events_wait_durably_in_the_outbox(
    dbs: list[Database], pg_url: str, tmp_path: Path
) -> None:
    # This replica never chains (its chainer is off): it exits with 25 events pending.
    proc = writer_process(to_async_url(pg_url), "nochain", 25, tmp_path / "n.ack", chainer=False)
    assert await asyncio.to_thread(proc.wait, 120) == 0
    assert await outbox_size(dbs[0]) == 25
    async with dbs[0].session() as s:
        report = await verify_chain(s, KEY)
    assert report.ok and report.checked == 0 and report.pending == 25
    assert await chain_pending(dbs[1], KEY) == 25
    assert_one_unforked_chain(await chained(dbs[0]))


async def test_concurrent_chainers_chain_each_pending_event_exactly_once(dbs: list[Database]) -> None:
    trail = AuditTrail(KEY, "redacted", PiiGuard(), deferred=True)
    n = 300
    async with dbs[0].transaction() as s:
        for i in range(n):
            await trail.append(s, entry(i))
    chainers = [AuditChainer(db, KEY, asyncio.Event(), batch=7) for db in dbs]
    done = await asyncio.gather(*(c.drain() for c in chainers for _ in range(2)))
    assert sum(done) == n
    rows = await chained(dbs[0])
    assert_one_unforked_chain(rows)
    assert sorted(r[1] or "" for r in rows) == sorted(f"r{i}" for i in range(n))


@pytest.mark.parametrize("tamper", ["edit", "delete", "insert"])
async def test_verify_on_postgres_catches_tampering_with_chained_events(
    dbs: list[Database], pg_url: str, tamper: str
) -> None:
    trail = AuditTrail(KEY, "redacted", PiiGuard(), deferred=True)
    for i in range(6):
        await trail.record(dbs[0], entry(i))
    await chain_pending(dbs[1], KEY)
    with psycopg.connect(pg_url) as conn:
        if tamper == "edit":
            conn.execute("UPDATE audit_events SET user_email = 'eve@example.com' WHERE seq = 4")
        elif tamper == "delete":
            conn.execute("DELETE FROM audit_events WHERE seq = 4")
        else:
            conn.execute(
                "INSERT INTO audit_events (seq, ts, action, outcome, channel, payload, content_digest, alg,"
                " prev_hash, hash) SELECT 7, now(), 'key.created', 'ok', 'api', '{}', content_digest, alg,"
                " hash, repeat('e', 64) FROM audit_events WHERE seq = 6"
            )
    async with dbs[0].session() as s:
        report = await verify_chain(s, KEY)
    assert not report.ok and report.first_bad_seq == (7 if tamper == "insert" else 4), report
