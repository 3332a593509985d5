"""The audit outbox on a real migrated SQLite database: deferred appends, the chainer,
crash recovery, forged pending rows, verify while events are pending."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import delete, event, func, insert, select, text, update

from backend.audit.chain import ChainKey
from backend.audit.chainer import REJECTED_ACTION, AuditChainer, chain_pending
from backend.audit.retention import run_retention
from backend.audit.types import Actor, AuditEntry, Outcome, VerifyReport
from backend.audit.verify import verify_chain
from backend.audit.writer import AuditTrail
from backend.db.models import AuditEvent, AuditOutbox, User
from backend.db.session import Database, migrate
from backend.guard.policy import PiiGuard

KEY = ChainKey(b"unit-test-secret-key-0123456789")
ALICE = Actor(channel="api", user_id=7, email="alice@example.com", team="legal", roles=("user",))


def deferred(key: ChainKey = KEY, **kw: object) -> AuditTrail:
    return AuditTrail(key, "redacted", PiiGuard(), deferred=True, **kw)  # type: ignore[arg-type]


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        action="chat.completion", outcome=Outcome.OK, actor=ALICE, request_id=f"req-{i}",
        status=200, expert="legal", reason="routed", payload={"n": i, "p": [0.25, 0.75]},
        prompt=f"question {i} from bob@example.com", answer=f"answer {i}",
    )  # fmt: skip


async def verify(db: Database) -> VerifyReport:
    async with db.session() as session:
        return await verify_chain(session, KEY)


async def counts(db: Database) -> tuple[int, int]:
    """(chained events, pending outbox rows)."""
    async with db.session() as s:
        chained = await s.scalar(select(func.count()).select_from(AuditEvent))
        pending = await s.scalar(select(func.count()).select_from(AuditOutbox))
    return int(chained or 0), int(pending or 0)


async def request_ids(db: Database) -> list[str | None]:
    async with db.session() as s:
        return list((await s.scalars(select(AuditEvent.request_id).order_by(AuditEvent.seq))).all())


async def test_deferred_append_is_pending_until_chained_and_verify_says_so(db: Database) -> None:
    trail = deferred()
    queued = await trail.record(db, entry(1))
    assert queued.prompt == "question 1 from [EMAIL_1]"  # the text policy applies at once
    assert trail.enqueued.is_set()
    assert await counts(db) == (0, 1)
    report = await verify(db)
    assert report.ok and report.checked == 0 and report.pending == 1, report

    assert await chain_pending(db, KEY) == 1
    assert await counts(db) == (1, 0)
    report = await verify(db)
    assert report.ok and report.checked == 1 and report.pending == 0 and report.head_seq == 1
    async with db.session() as s:
        event = (await s.scalars(select(AuditEvent))).one()
    assert (event.seq, event.request_id, event.prev_hash) == (1, "req-1", "0" * 64)
    assert event.prompt == "question 1 from [EMAIL_1]" and event.payload == {"n": 1, "p": [0.25, 0.75]}
    assert event.content_digest == queued.content_digest


async def test_the_event_commits_with_the_callers_rows_or_not_at_all(db: Database) -> None:
    trail = deferred()
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            session.add(User(email="dana@example.com", roles=["user"], groups=[]))
            await trail.append(session, entry(1))
            raise RuntimeError("the request failed after writing its rows")
    assert await counts(db) == (0, 0)
    assert not trail.enqueued.is_set()  # a rollback wakes no chainer
    async with db.transaction() as session:
        session.add(User(email="dana@example.com", roles=["user"], groups=[]))
        await trail.append(session, entry(2))
    assert await counts(db) == (0, 1)


async def test_batches_keep_outbox_order_and_never_fork(db: Database) -> None:
    trail = deferred()
    for i in range(1, 13):
        await trail.record(db, entry(i))
    chainer = AuditChainer(db, KEY, trail.enqueued, batch=5)  # three batches: 5, 5, 2
    assert await chainer.drain() == 12
    assert await request_ids(db) == [f"req-{i}" for i in range(1, 13)]
    report = await verify(db)
    assert report.ok and report.checked == 12 and report.pending == 0


class Rounds(asyncio.Event):
    """The chainer's wake-up event, which also says each time the chainer starts waiting
    on it: once per round, after that round's drain."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: asyncio.Queue[None] = asyncio.Queue()

    async def wait(self) -> Literal[True]:
        self.waits.put_nowait(None)
        return await super().wait()

    async def next_round(self) -> None:
        """Returns once the chainer has finished a drain and waits again (30 s at most)."""
        await asyncio.wait_for(self.waits.get(), 30)


async def test_background_chainer_is_woken_by_an_enqueue(db: Database) -> None:
    trail = deferred()
    trail.enqueued = wake = Rounds()
    # A poll interval far beyond the test's patience: only the wake-up can chain.
    chainer = AuditChainer(db, KEY, wake, interval_s=3600)
    task = asyncio.create_task(chainer.run())
    try:
        await wake.next_round()  # its startup drain found nothing
        assert await counts(db) == (0, 0)
        await trail.record(db, entry(1))
        await wake.next_round()  # woken by the enqueue, drained
        assert await counts(db) == (1, 0)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (await verify(db)).ok


async def test_events_left_by_a_crashed_process_are_chained_by_the_next(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    migrate(url)
    dead = Database(url)
    trail = deferred()
    for i in range(1, 8):
        await trail.record(dead, entry(i))
    # The process dies before its chainer ran: no drain, no shutdown, connections gone.
    await dead.dispose()

    successor = Database(url)
    try:
        assert (await verify(successor)).pending == 7
        wake = Rounds()
        task = asyncio.create_task(AuditChainer(successor, KEY, wake, interval_s=3600).run())
        await wake.next_round()  # the startup drain, not a wake-up or a poll
        task.cancel()
        assert await counts(successor) == (7, 0)
        assert await request_ids(successor) == [f"req-{i}" for i in range(1, 8)]
        assert (await verify(successor)).ok
    finally:
        await successor.dispose()


async def test_shutdown_drain_chains_what_is_left(db: Database) -> None:
    trail = deferred()
    await trail.record(db, entry(1))
    await AuditChainer(db, KEY, trail.enqueued).settle()
    assert await counts(db) == (1, 0)


async def test_inline_writer_chains_rows_deferred_writers_left(db: Database) -> None:
    await deferred().record(db, entry(1))
    await deferred().record(db, entry(2))
    # A CLI command (no chainer of its own) appends: it chains everything pending.
    await AuditTrail(KEY, "redacted", PiiGuard()).record(db, entry(3))
    assert await request_ids(db) == ["req-1", "req-2", "req-3"]
    assert (await verify(db)).ok


async def test_a_forged_pending_row_is_chained_as_a_rejection(db: Database) -> None:
    trail = deferred()
    await trail.record(db, entry(1))
    await trail.record(db, entry(2))
    async with db.transaction() as s:
        # An intruder with SQL access alters a pending event and slips in a new one.
        await s.execute(update(AuditOutbox).where(AuditOutbox.request_id == "req-2").values(user_email="eve@x.org"))
        await s.execute(
            insert(AuditOutbox).values(
                ts=datetime.now(UTC), request_id="req-forged", action="key.created", outcome="ok",
                channel="api", payload={}, content_digest="0" * 64, alg=KEY.alg, seal="f" * 64,
            )
        )  # fmt: skip
    assert await chain_pending(db, KEY) == 3
    async with db.session() as s:
        events = list((await s.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all())
    assert [e.action for e in events] == ["chat.completion", REJECTED_ACTION, REJECTED_ACTION]
    assert events[0].request_id == "req-1"
    assert [e.payload["claimed"]["request_id"] for e in events[1:]] == ["req-2", "req-forged"]
    assert all(e.prompt is None and e.user_email == "system" for e in events[1:])
    assert (await verify(db)).ok  # the chain itself is intact; the attempt is on record


async def test_rows_written_under_another_key_wait_for_a_process_that_holds_it(db: Database) -> None:
    other = ChainKey(b"another-secret-key-for-replica-b")
    await deferred(other).record(db, entry(1))
    await deferred().record(db, entry(2))
    assert await chain_pending(db, KEY) == 1
    assert await counts(db) == (1, 1)
    report = await verify(db)
    assert report.ok and report.pending == 1


@pytest.mark.parametrize("tamper", ["edit", "delete", "insert"])
async def test_verify_catches_tampering_with_chained_events(db: Database, tamper: str) -> None:
    trail = deferred()
    for i in range(1, 6):
        await trail.record(db, entry(i))
    await chain_pending(db, KEY)
    await trail.record(db, entry(6))  # pending: not part of what verify judges
    async with db.transaction() as s:
        if tamper == "edit":
            await s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(expert="code"))
        elif tamper == "delete":
            await s.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
        else:
            row = await s.get(AuditEvent, 2)
            assert row is not None
            await s.execute(update(AuditEvent).where(AuditEvent.seq >= 3).values(seq=AuditEvent.seq + 100))
            s.add(
                AuditEvent(
                    seq=3, ts=row.ts, action="key.created", outcome="ok", channel="api", payload={},
                    content_digest=row.content_digest, alg=row.alg, prev_hash=row.hash, hash="e" * 64,
                )
            )  # fmt: skip
    report = await verify(db)
    assert not report.ok and report.first_bad_seq == 3 and report.pending == 1, report


async def test_retention_chains_its_cutoff_before_purging(db: Database) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    trail = deferred(clock=lambda: old)
    for i in (1, 2):
        await trail.record(db, entry(i))
    await chain_pending(db, KEY)
    # The API's trail is deferred and no chainer runs here: retention chains by itself.
    purged, _cutoff = await run_retention(db, deferred(), Actor.cli("ops"), days=30)
    assert purged == 2
    report = await verify(db)
    assert report.ok and report.purged == 2, report
    assert report.pending == 1  # the ".finished" event, left for the chainer


async def test_cancelling_the_chainer_mid_drain_leaves_no_lock_behind(db: Database) -> None:
    trail = deferred()
    for i in range(20):
        await trail.record(db, entry(i))
    locking = asyncio.Event()

    def watch(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("UPDATE audit_chain_head"):
            locking.set()

    event.listen(db.engine.sync_engine, "before_cursor_execute", watch)
    chainer = AuditChainer(db, KEY, trail.enqueued)
    task = asyncio.create_task(chainer.run())
    await locking.wait()  # its startup drain is taking the chain lock right now
    task.cancel()  # as the lifespan's task group does at shutdown
    with pytest.raises(asyncio.CancelledError):
        await task
    # Cut off there, the drain's connection would keep SQLite's write lock: this write
    # would fail "database is locked" after the 30 s busy timeout. Shielded, the drain
    # runs to its end and releases it.
    await trail.record(db, entry(20))
    await chainer.settle()
    assert await counts(db) == (21, 0)
    assert (await verify(db)).ok


@pytest.mark.faults
@pytest.mark.parametrize(
    "column, raw",
    [("payload", "{not json"), ("payload", '{"n": NaN}'), ("ts", "yesterday"), ("status", "'two hundred'")],
)
async def test_a_pending_row_that_does_not_decode_is_chained_as_a_rejection(
    db: Database, column: str, raw: str
) -> None:
    """A corrupted outbox row must not stop the chainer (every later event would wait
    behind it forever): it is chained as a rejection naming what is wrong, and the
    events before and after it are chained as usual."""
    trail = deferred()
    for i in (1, 2, 3):
        await trail.record(db, entry(i))
    async with db.transaction() as s:
        literal = raw if column == "status" else "'" + raw.replace("'", "''") + "'"
        await s.execute(text(f"UPDATE audit_outbox SET {column} = {literal} WHERE request_id = 'req-2'"))
    assert await chain_pending(db, KEY) == 3
    async with db.session() as s:
        events = list((await s.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all())
    assert [e.action for e in events] == ["chat.completion", REJECTED_ACTION, "chat.completion"]
    assert events[1].payload["problem"].startswith("the pending event does not decode")
    assert events[1].payload["claimed"]["request_id"] == "req-2"
    assert (await verify(db)).ok
