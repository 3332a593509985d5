"""The audit hash chain on a real migrated SQLite database: append, verify, tamper."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, text, update

from backend.api.schemas.audit import AuditEventOut
from backend.audit.canonical import canonical_json
from backend.audit.chain import ChainKey, EventBody, content_digest
from backend.audit.chainer import chain_pending
from backend.audit.export import render
from backend.audit.retention import run_retention
from backend.audit.rows import decode, event_columns
from backend.audit.types import Actor, AuditEntry, AuditEventView, Outcome, Unreadable
from backend.audit.verify import verify_chain
from backend.audit.writer import AuditTrail
from backend.db.models import AuditChainHead, AuditEvent, AuditOutbox
from backend.db.session import Database
from backend.guard.policy import PiiGuard

KEY = ChainKey(b"unit-test-secret-key-0123456789")
ALICE = Actor(channel="api", user_id=7, email="alice@example.com", team="legal", roles=("user",))


def trail(key: ChainKey = KEY, policy: str = "redacted") -> AuditTrail:
    return AuditTrail(key, policy, PiiGuard())  # type: ignore[arg-type]


def entry(i: int, **kw: object) -> AuditEntry:
    base: dict[str, object] = {
        "action": "chat.completion",
        "outcome": Outcome.OK,
        "actor": ALICE,
        "request_id": f"req-{i}",
        "status": 200,
        "expert": "legal",
        "reason": "routed",
        "payload": {"route": {"probabilities": {"legal": 0.9, "code": 0.1}}, "n": i},
        "prompt": f"question {i} from bob@example.com",
        "answer": f"answer {i}",
    }
    base.update(kw)
    return AuditEntry(**base)  # type: ignore[arg-type]


async def fill(db: Database, n: int, t: AuditTrail | None = None) -> None:
    t = t or trail()
    for i in range(1, n + 1):
        await t.record(db, entry(i))


async def verify(db: Database, key: ChainKey = KEY):  # type: ignore[no-untyped-def]
    async with db.session() as session:
        return await verify_chain(session, key)


# -- canonical JSON ------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_and_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "é", None, True]}) == '{"a":[1.5,"é",null,true],"b":1}'.encode()
    assert canonical_json({"x": (1, 2)}) == canonical_json({"x": [1, 2]})
    assert canonical_json({"z": -0.0}) == canonical_json({"z": 0.0})
    # Key order of the input never matters.
    assert canonical_json({"a": 1, "b": {"d": 2, "c": 3}}) == canonical_json({"b": {"c": 3, "d": 2}, "a": 1})


@pytest.mark.parametrize("bad", [math.nan, math.inf, datetime.now(UTC), {1: "int key"}, {"s": {1, 2}}])
def test_canonical_json_refuses_what_json_cannot_spell(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json(bad if isinstance(bad, dict) else {"v": bad})


def test_event_hash_covers_every_field_and_the_key() -> None:
    body = EventBody(
        seq=1, ts=datetime(2026, 1, 1, tzinfo=UTC), request_id="r", action="a", outcome="ok",
        status=200, user_id=1, user_email="e", team=None, channel="api", expert="code",
        reason="routed", payload={"k": 1}, prompt="p", answer="a", content_digest="d", alg=KEY.alg,
        prev_hash="0" * 64,
    )  # fmt: skip
    import dataclasses

    h = body.hash(KEY)
    for name, value in [
        ("seq", 2),
        ("payload", {"k": 2}),
        ("user_email", "x"),
        ("prev_hash", "1" * 64),
        ("ts", datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        ("content_digest", "e"),
    ]:
        assert dataclasses.replace(body, **{name: value}).hash(KEY) != h, name
    assert body.hash(ChainKey(b"another-key-of-some-length")) != h
    assert body.hash(ChainKey(None)) != h
    # Naive timestamps (how SQLite returns them) are UTC.
    assert dataclasses.replace(body, ts=datetime(2026, 1, 1)).hash(KEY) == h
    # The text is not hashed (content_digest is), so retention can drop it.
    assert dataclasses.replace(body, prompt=None, answer="other").hash(KEY) == h


# -- append and verify ---------------------------------------------------------------


async def test_intact_chain_verifies(db: Database) -> None:
    await fill(db, 5)
    report = await verify(db)
    assert report.ok and report.checked == 5 and report.head_seq == 5
    async with db.session() as s:
        rows = (await s.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == "0" * 64
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, 5))
    assert rows[0].alg.startswith("hmac-sha256:")
    # Default text policy: redacted.
    assert rows[0].prompt == "question 1 from [EMAIL_1]"


async def test_empty_chain_verifies(db: Database) -> None:
    report = await verify(db)
    assert report.ok and report.checked == 0 and report.head_seq == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("payload", {"route": {"probabilities": {"legal": 0.1, "code": 0.9}}, "n": 3}),
        ("user_email", "mallory@example.com"),
        ("outcome", "refused"),
        ("expert", "code"),
        ("ts", datetime(2020, 1, 1, tzinfo=UTC)),
        ("request_id", "req-x"),
    ],
)
async def test_edited_field_is_caught_at_its_seq(db: Database, column: str, value: object) -> None:
    await fill(db, 5)
    async with db.transaction() as s:
        await s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values({column: value}))
    report = await verify(db)
    assert not report.ok and report.first_bad_seq == 3, report
    assert "edited" in (report.problem or "")


async def test_edited_text_is_caught_by_its_digest(db: Database) -> None:
    await fill(db, 4)
    async with db.transaction() as s:
        await s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(answer="a nicer answer"))
    report = await verify(db)
    assert report.first_bad_seq == 2 and "digest" in (report.problem or "")


async def test_text_removed_without_retention_is_caught(db: Database) -> None:
    await fill(db, 3)
    async with db.transaction() as s:
        await s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(prompt=None, answer=None))
    assert (await verify(db)).first_bad_seq == 2
    # Marking it purged does not help: no audited retention run covers it.
    async with db.transaction() as s:
        await s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(content_purged_at=datetime.now(UTC)))
    report = await verify(db)
    assert report.first_bad_seq == 2 and "retention" in (report.problem or "")


async def test_deleted_middle_row_names_the_missing_seq(db: Database) -> None:
    await fill(db, 6)
    async with db.transaction() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.seq == 4))
    report = await verify(db)
    assert report.first_bad_seq == 4 and "missing" in (report.problem or "")


async def test_deleted_tail_row_is_caught_through_the_head(db: Database) -> None:
    await fill(db, 4)
    async with db.transaction() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.seq == 4))
    report = await verify(db)
    assert report.first_bad_seq == 4 and "missing" in (report.problem or "")


async def test_deleted_first_row_is_caught(db: Database) -> None:
    await fill(db, 3)
    async with db.transaction() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.seq == 1))
    assert (await verify(db)).first_bad_seq == 1


async def _forge_after(db: Database, seq: int, key: ChainKey, *, update_head: bool) -> None:
    """Append a row by hand, as an intruder with SQL access would, linked to ``seq``."""
    async with db.transaction() as s:
        prev = await s.get(AuditEvent, seq)
        assert prev is not None
        digest = content_digest(key, None, None)
        body = EventBody(
            seq=seq + 1, ts=datetime.now(UTC), request_id=None, action="key.created",
            outcome="ok", status=200, user_id=1, user_email="mallory@example.com", team=None,
            channel="api", expert=None, reason=None, payload={}, prompt=None, answer=None,
            content_digest=digest, alg=key.alg, prev_hash=prev.hash,
        )  # fmt: skip
        s.add(
            AuditEvent(
                seq=body.seq, ts=body.ts, action=body.action, outcome=body.outcome,
                status=200, user_id=1, user_email=body.user_email, channel="api", payload={},
                content_digest=digest, alg=body.alg, prev_hash=body.prev_hash, hash=body.hash(key),
            )
        )  # fmt: skip
        if update_head:
            await s.execute(
                update(AuditChainHead).where(AuditChainHead.id == 1).values(seq=body.seq, hash=body.hash(key))
            )


async def test_inserted_row_without_the_key_is_caught(db: Database) -> None:
    await fill(db, 3)
    # The intruder links correctly and even moves the head, but cannot make the HMAC.
    await _forge_after(db, 3, ChainKey(None), update_head=True)
    report = await verify(db)
    assert report.first_bad_seq == 4 and "unkeyed" in (report.problem or "")
    # Forging with a guessed key fails on the key id.
    async with db.transaction() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.seq == 4))
        await s.execute(update(AuditChainHead).values(seq=3, hash=(await s.get(AuditEvent, 3)).hash))  # type: ignore[union-attr]
    assert (await verify(db)).ok
    await _forge_after(db, 3, ChainKey(b"guessed-key-guessed-key"), update_head=True)
    report = await verify(db)
    assert report.first_bad_seq == 4 and "key" in (report.problem or "")


async def test_inserted_row_past_the_head_is_caught_even_unkeyed(db: Database) -> None:
    unkeyed = ChainKey(None)
    await fill(db, 3, trail(unkeyed))
    assert (await verify(db, unkeyed)).ok
    await _forge_after(db, 3, unkeyed, update_head=False)
    report = await verify(db, unkeyed)
    assert report.first_bad_seq == 4 and "inserted" in (report.problem or "")


async def test_inserted_row_in_the_middle_is_caught(db: Database) -> None:
    await fill(db, 4)
    # Shift 3..4 up by one and put a forged event at 3: its successor no longer links.
    async with db.transaction() as s:
        await s.execute(text("UPDATE audit_events SET seq = seq + 10 WHERE seq >= 3"))
        await s.execute(text("UPDATE audit_events SET seq = seq - 9 WHERE seq >= 13"))
        await s.execute(update(AuditChainHead).values(seq=5))
    await _forge_after(db, 2, KEY, update_head=False)
    report = await verify(db)
    assert report.first_bad_seq == 4 and "link" in (report.problem or "")


async def test_verifier_without_the_key_says_so(db: Database) -> None:
    await fill(db, 2)
    report = await verify(db, ChainKey(None))
    assert report.first_bad_seq == 1 and "EXPERTGATE_SECRET_KEY" in (report.problem or "")


async def test_chain_may_move_from_unkeyed_to_keyed(db: Database) -> None:
    await fill(db, 2, trail(ChainKey(None)))
    await fill(db, 2, trail(KEY))
    assert (await verify(db)).ok


# -- text policy and retention -------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("full", "question 1 from bob@example.com"),
        ("redacted", "question 1 from [EMAIL_1]"),
    ],
)
async def test_text_policy(db: Database, policy: str, expected: str) -> None:
    view = await trail(policy=policy).record(db, entry(1))
    assert view.prompt == expected and view.answer == "answer 1"


async def test_hash_policy_stores_only_a_keyed_digest(db: Database) -> None:
    view = await trail(policy="hash").record(db, entry(1))
    assert view.prompt is not None and view.prompt.startswith(KEY.alg + ":")
    assert "bob" not in view.prompt and len(view.prompt.split(":")[-1]) == 64
    assert view.prompt == trail(policy="hash").stored_text("question 1 from bob@example.com")
    assert (await verify(db)).ok


async def test_retention_drops_old_text_and_the_chain_still_verifies(db: Database) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    await fill(db, 2, AuditTrail(KEY, "redacted", PiiGuard(), clock=lambda: old))
    t = trail()
    for i in (3, 4):
        await t.record(db, entry(i))
    assert (await verify(db)).ok

    purged, cutoff = await run_retention(db, t, Actor.cli("ops"), days=30)
    assert purged == 2 and old < cutoff
    async with db.session() as s:
        rows = {r.seq: r for r in (await s.scalars(select(AuditEvent))).all()}
    assert rows[1].prompt is None and rows[1].answer is None and rows[1].content_purged_at is not None
    assert rows[3].prompt is not None  # recent text stays
    assert rows[5].action == "audit.retention" and rows[6].payload["purged"] == 2
    report = await verify(db)
    assert report.ok and report.purged == 2, report
    # A second run finds nothing more to purge, and the chain still verifies.
    assert (await run_retention(db, t, Actor.cli("ops"), days=30))[0] == 0
    assert (await verify(db)).ok


async def test_purge_newer_than_any_audited_cutoff_is_caught(db: Database) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    await fill(db, 1, AuditTrail(KEY, "redacted", PiiGuard(), clock=lambda: old))
    await fill(db, 2)
    await run_retention(db, trail(), Actor.cli("ops"), days=30)
    async with db.transaction() as s:  # an intruder "purges" a recent event too
        await s.execute(
            update(AuditEvent).where(AuditEvent.seq == 2)
            .values(prompt=None, answer=None, content_purged_at=datetime.now(UTC))
        )  # fmt: skip
    report = await verify(db)
    assert report.first_bad_seq == 2 and "retention" in (report.problem or "")


# -- concurrency ---------------------------------------------------------------------


async def test_concurrent_appends_on_sqlite_never_fork(db: Database) -> None:
    t = trail()

    async def writer(w: int) -> None:
        for i in range(10):
            await t.record(db, entry(w * 100 + i))

    await asyncio.gather(*(writer(w) for w in range(8)))
    report = await verify(db)
    assert report.ok and report.checked == 80 and report.head_seq == 80


# -- pinned bytes: existing chains must keep verifying -------------------------------
# Known outputs for fixed events, computed before the audit record was defined once
# (issue 21, item 3). A change to any of them breaks every stored chain or export
# reader: it needs a new hash domain, not a new expected value here.

PINNED_TS = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def test_event_canonical_bytes_hash_and_seal_are_pinned() -> None:
    body = EventBody(
        seq=42, ts=PINNED_TS, request_id="req-1", action="chat.completion", outcome="ok",
        status=200, user_id=7, user_email="alice@example.com", team="légal", channel="api",
        expert="legal", reason="routed",
        payload={"route": {"probabilities": {"legal": 0.9, "code": 0.1}}, "n": 1, "z": -0.0, "t": [1, "é", None, True]},
        prompt="question", answer="answer", content_digest=content_digest(KEY, "question", "answer"),
        alg=KEY.alg, prev_hash="ab" * 32,
    )  # fmt: skip
    assert (
        body.canonical()
        == (
            '{"action":"chat.completion","alg":"hmac-sha256:090844a17e3d","channel":"api",'
            '"content_digest":"8ab2a3e1a8a0962eb70e4d582ef992a8642457d19868230dc95c989b4cbb177d",'
            '"expert":"legal","outcome":"ok","payload":{"n":1,"route":{"probabilities":{"code":0.1,"legal":0.9}},'
            '"t":[1,"é",null,true],"z":0.0},"prev_hash":"' + "ab" * 32 + '","reason":"routed",'
            '"request_id":"req-1","seq":42,"status":200,"team":"légal","ts":"2026-03-04T05:06:07.890123Z",'
            '"user_email":"alice@example.com","user_id":7}'
        ).encode()
    )
    assert body.hash(KEY) == "c03a04f38b8eaca5c05615f9c2d29e324c14b9abfb18ea63390eb2d2bcee71ed"
    assert body.hash(ChainKey(None)) == "ca7bfcbceeded941a316c2bf52e702a8c804f2e9b7404f984099a0dd8fee3539"
    assert body.seal(KEY) == "bff79363349c79038c233a29557b24bda3bcd1bf1cbc37739b4815e70bd8f1e4"

    unkeyed = ChainKey(None)
    empty = EventBody(
        seq=1, ts=datetime(2026, 1, 1, tzinfo=UTC), request_id=None, action="a", outcome="refused",
        status=None, user_id=None, user_email=None, team=None, channel="cli", expert=None, reason=None,
        payload={}, prompt=None, answer=None, content_digest=content_digest(unkeyed, None, None), alg="sha256",
        prev_hash="0" * 64,
    )  # fmt: skip
    assert empty.hash(unkeyed) == "f308f9943edf985c9f4acf602c97a071a64f749967f34bb103457b19b241d2ef"
    assert empty.seal(unkeyed) == "55e2947a10bf61a5a7330a953b2ac57ae6f5992d0370dcfe6952f98e27d0bb0d"


async def test_written_chained_and_exported_event_is_pinned(db: Database) -> None:
    """Writer -> outbox (seal) -> chainer (hash) -> rows -> export, byte for byte."""
    t = AuditTrail(KEY, "full", PiiGuard(), clock=lambda: PINNED_TS, deferred=True)
    actor = Actor(channel="api", user_id=7, email="alice@example.com", team="légal")
    await t.record(
        db,
        AuditEntry(
            action="chat.completion", outcome=Outcome.OK, actor=actor, request_id="req-1", status=200,
            expert="legal", reason="routed", payload={"route": {"p": 0.5}, "n": 1}, prompt="=question", answer="answer",
        ),
    )  # fmt: skip
    async with db.session() as s:
        assert (await s.scalars(select(AuditOutbox.seal))).one() == (
            "dffb75955deaecbc32356f8652b0e2721b0b026d4da201fb88d9916c2295368b"
        )
    assert await chain_pending(db, KEY) == 1
    digest = "0cce84a0b8ece0141b6c8a92c63dd415745957ed93d8303155525db677588223"
    hash_ = "95c50b24d1072a13717d93ddb2e685a91231a1e6acd8607f3849c9337ac47281"
    async with db.session() as s:
        views = [decode(row) for row in (await s.execute(event_columns())).all()]
    assert [v.hash for v in views] == [hash_]
    assert (await verify(db)).ok

    async def events() -> AsyncIterator[AuditEventView]:
        for view in views:
            yield view

    jsonl = b"".join([line async for line in render(events(), "jsonl")])
    assert (
        jsonl
        == (
            '{"seq":1,"ts":"2026-03-04T05:06:07.890123Z","request_id":"req-1","action":"chat.completion",'
            '"outcome":"ok","status":200,"user_id":7,"user_email":"alice@example.com","team":"légal",'
            '"channel":"api","expert":"legal","reason":"routed","payload":{"route":{"p":0.5},"n":1},'
            f'"prompt":"=question","answer":"answer","content_digest":"{digest}","content_purged_at":null,'
            f'"alg":"hmac-sha256:090844a17e3d","prev_hash":"{"0" * 64}","hash":"{hash_}","unreadable":null}}\n'
        ).encode()
    )
    csv_ = b"".join([line async for line in render(events(), "csv")])
    assert (
        csv_
        == (
            "seq,ts,request_id,action,outcome,status,user_id,user_email,team,channel,expert,reason,payload,"
            "prompt,answer,content_digest,content_purged_at,alg,prev_hash,hash,unreadable\n"
            "1,2026-03-04T05:06:07.890123Z,req-1,chat.completion,ok,200,7,alice@example.com,légal,api,legal,"
            f'routed,"{{""route"":{{""p"":0.5}},""n"":1}}",\'=question,answer,{digest},,'
            f"hmac-sha256:090844a17e3d,{'0' * 64},{hash_},\n"
        ).encode()
    )


def test_api_event_body_is_pinned() -> None:
    view = AuditEventView(
        seq=3, ts=datetime(2026, 1, 1, tzinfo=UTC), request_id=None, action="a", outcome="ok", status=None,
        user_id=None, user_email=None, team=None, channel="api", expert=None, reason=None, payload={"k": [1]},
        prompt=None, answer=None, content_digest="d", content_purged_at=datetime(2026, 2, 1, tzinfo=UTC),
        alg="sha256", prev_hash="p", hash="h", problem=Unreadable("bad_timestamp", "x"), text_withheld=True,
    )  # fmt: skip
    assert AuditEventOut.of(view).model_dump_json() == (
        '{"seq":3,"ts":"2026-01-01T00:00:00Z","request_id":null,"action":"a","outcome":"ok","status":null,'
        '"user_id":null,"user_email":null,"team":null,"channel":"api","expert":null,"reason":null,'
        '"payload":{"k":[1]},"prompt":null,"answer":null,"content_digest":"d",'
        '"content_purged_at":"2026-02-01T00:00:00Z","alg":"sha256","prev_hash":"p","hash":"h",'
        '"unreadable":{"kind":"bad_timestamp","problem":"x"},"text_withheld":true}'
    )
