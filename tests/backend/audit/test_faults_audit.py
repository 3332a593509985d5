"""Fault injection on the audit trail (issue 25, item 8), on real migrated SQLite files.

Corrupted rows are written with raw SQL, as a broken disk, a bad restore or an intruder
would leave them. Whatever is in the table: verify reports a finding (seq, kind, a
sentence) with exit status 1 and no traceback; the read endpoints answer 200 with the
row marked ``unreadable``; the export carries the marked row. And the default chain is
keyed, and anchored outside the database: a recomputed insert, a truncated tail or a
rewritten-and-rehashed chain is caught.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from backend.audit.anchors import AnchorLog
from backend.audit.chain import ChainKey, content_digest
from backend.audit.chainer import AuditChainer
from backend.audit.rows import decode, event_columns
from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import body_of
from backend.cli.main import main
from backend.db.models import AuditEvent, User
from backend.db.session import Database
from backend.runtime import Runtime
from tests.conftest import auth, make_key

pytestmark = pytest.mark.faults

# (SQL that corrupts event 2, the kind verify names, words of its sentence)
CORRUPTIONS = {
    "payload_not_json": ("UPDATE audit_events SET payload = '{\"key_id\": 9' WHERE seq = 2", "unreadable_row", "not valid JSON"),
    "payload_nan": ("UPDATE audit_events SET payload = '{\"key_id\": NaN}' WHERE seq = 2", "unreadable_row", "NaN"),
    "payload_huge_number": ("UPDATE audit_events SET payload = '{\"n\": 1e999}' WHERE seq = 2", "unreadable_row", "too large"),
    "payload_not_object": ("UPDATE audit_events SET payload = '[1, 2]' WHERE seq = 2", "unreadable_row", "not an object"),
    "bad_timestamp": ("UPDATE audit_events SET ts = 'last tuesday' WHERE seq = 2", "bad_timestamp", "not a date"),
    "bad_purge_timestamp": ("UPDATE audit_events SET content_purged_at = '2026-99-99' WHERE seq = 2", "bad_timestamp", "content_purged_at"),
    "text_in_number_column": ("UPDATE audit_events SET status = 'two hundred' WHERE seq = 2", "unreadable_row", "status"),
    "field_edited": ("UPDATE audit_events SET action = 'key.revoked' WHERE seq = 2", "hash_mismatch", "hash"),
}  # fmt: skip


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EXPERTGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXPERTGATE_SECRET_KEY", raising=False)
    return tmp_path / "data"


def three_events(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for user in ("a@example.com", "b@example.com", "c@example.com"):
        assert main(["keys", "create", "--user", user]) == 0
    capsys.readouterr()


def corrupt(data_env: Path, *statements: str) -> None:
    with sqlite3.connect(data_env / "expertgate.db") as conn:
        for sql in statements:
            conn.execute(sql)


def verify_json(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["audit", "verify", "--json"])
    return code, json.loads(capsys.readouterr().out)


# -- verify: a finding, never a traceback ----------------------------------------------


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_verify_reports_a_corrupted_row_as_a_finding(
    name: str, data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql, kind, words = CORRUPTIONS[name]
    three_events(data_env, capsys)
    corrupt(data_env, sql)
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert f"BROKEN at seq 2 [{kind}]" in err and words in err, err
    code, report = verify_json(capsys)
    assert code == 1 and report["first_bad_seq"] == 2 and report["kind"] == kind and not report["ok"]


def test_verify_reports_a_missing_chain_head(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    three_events(data_env, capsys)
    corrupt(data_env, "DELETE FROM audit_chain_head")
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert "[missing_head]" in err and "chain head" in err, err
    code, report = verify_json(capsys)
    assert code == 1 and report["kind"] == "missing_head" and report["first_bad_seq"] is None
    assert main(["audit", "head"]) == 1
    assert "missing" in capsys.readouterr().err


# -- keyed by default ---------------------------------------------------------------------


def _key(data_env: Path) -> ChainKey:
    return ChainKey((data_env / "audit.key").read_text().strip().encode())


def test_first_start_creates_a_private_key_file_and_keys_the_chain(
    data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three_events(data_env, capsys)
    key_file = data_env / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_text().strip()
    with sqlite3.connect(data_env / "expertgate.db") as conn:
        algs = {row[0] for row in conn.execute("SELECT alg FROM audit_events")}
        dumped = "\n".join(conn.iterdump())
    assert algs == {_key(data_env).alg} and algs.pop().startswith("hmac-sha256:")
    assert secret not in dumped  # never in the database
    # The next start reads the same key: the chain goes on verifying.
    assert main(["keys", "create", "--user", "d@example.com"]) == 0
    assert key_file.read_text().strip() == secret
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0


def test_explicit_secret_key_is_used_and_no_key_file_is_made(
    data_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPERTGATE_SECRET_KEY", "an-explicit-deployment-key-0123456789")
    three_events(data_env, capsys)
    assert not (data_env / "audit.key").exists()
    assert main(["audit", "verify"]) == 0


async def _forge_tail(data_env: Path, key: ChainKey) -> None:
    """Append an event after the last one, hashed under ``key``, and move the head to it."""
    db = Database(f"sqlite+aiosqlite:///{data_env / 'expertgate.db'}")
    try:
        async with db.transaction() as s:
            last = decode((await s.execute(event_columns().order_by(AuditEvent.seq.desc()).limit(1))).one())
            forged = replace(body_of(last), seq=last.seq + 1, prev_hash=last.hash, alg=key.alg, action="key.created")
            digest = forged.hash(key)
            await s.execute(
                text(
                    "INSERT INTO audit_events (seq, ts, action, outcome, channel, payload, content_digest, alg,"
                    " prev_hash, hash, user_email) SELECT :seq, ts, :action, outcome, channel, payload,"
                    " content_digest, :alg, :prev, :hash, user_email FROM audit_events WHERE seq = :last"
                ),
                {"seq": forged.seq, "action": forged.action, "alg": key.alg, "prev": last.hash, "hash": digest, "last": last.seq},
            )  # fmt: skip
            await s.execute(
                text("UPDATE audit_chain_head SET seq = :seq, hash = :hash"), {"seq": forged.seq, "hash": digest}
            )
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("forger", "kind"), [(ChainKey(None), "unkeyed_event"), (ChainKey(b"a-guessed-wrong-key-000"), "unknown_key")]
)
def test_an_inserted_event_with_a_recomputed_hash_is_caught(
    forger: ChainKey, kind: str, data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three_events(data_env, capsys)
    asyncio.run(_forge_tail(data_env, forger))
    code, report = verify_json(capsys)
    assert code == 1 and report["first_bad_seq"] == 4 and report["kind"] == kind, report


# -- anchors --------------------------------------------------------------------------------


def test_anchor_then_more_events_verifies(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    three_events(data_env, capsys)
    assert main(["audit", "anchor"]) == 0
    assert "anchored seq 3" in capsys.readouterr().out
    assert main(["keys", "create", "--user", "d@example.com"]) == 0
    assert main(["audit", "anchor"]) == 0
    capsys.readouterr()
    code, report = verify_json(capsys)
    assert code == 0 and report["anchors_checked"] == 2, report
    lines = (data_env / "audit-anchors.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [3, 4]
    assert stat.S_IMODE(os.stat(data_env / "audit-anchors.jsonl").st_mode) == 0o600


def test_a_truncated_chain_behind_an_anchor_is_caught(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    three_events(data_env, capsys)
    assert main(["audit", "anchor"]) == 0
    capsys.readouterr()
    # Delete the newest event and move the head back: the chain alone is consistent.
    corrupt(
        data_env,
        "DELETE FROM audit_events WHERE seq = 3",
        "UPDATE audit_chain_head SET seq = 2, hash = (SELECT hash FROM audit_events WHERE seq = 2)",
    )
    code, report = verify_json(capsys)
    assert code == 1 and report["kind"] == "anchor_ahead" and report["first_bad_seq"] == 3, report


async def _rewrite_from(data_env: Path, seq: int, key: ChainKey) -> None:
    """Edit event ``seq``'s payload and rehash it and every later event under ``key``:
    what someone holding the key (or, for an unkeyed chain, anyone) could do."""
    db = Database(f"sqlite+aiosqlite:///{data_env / 'expertgate.db'}")
    try:
        async with db.transaction() as s:
            rows = [decode(r) for r in await s.execute(event_columns().order_by(AuditEvent.seq))]
            prev = next(r.hash for r in rows if r.seq == seq - 1) if seq > 1 else "0" * 64
            for row in rows[seq - 1 :]:
                payload = {"rewritten": True} if row.seq == seq else dict(row.payload)
                digest = content_digest(key, row.prompt, row.answer)
                body = replace(body_of(row), payload=payload, prev_hash=prev, alg=key.alg, content_digest=digest)
                prev = body.hash(key)
                await s.execute(
                    text(
                        "UPDATE audit_events SET payload = :p, alg = :alg, content_digest = :d, prev_hash = :prev,"
                        " hash = :h WHERE seq = :seq"
                    ),
                    {"p": json.dumps(payload), "alg": key.alg, "d": digest, "prev": body.prev_hash, "h": prev, "seq": row.seq},
                )  # fmt: skip
            await s.execute(text("UPDATE audit_chain_head SET hash = :h"), {"h": prev})
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("rewriter", "start", "kind", "seq"),
    [
        ("with the key", 2, "anchor_mismatch", 3),
        ("unkeyed", 1, "anchor_mismatch", 3),  # the whole chain rebuilt as plain SHA-256
        ("unkeyed", 2, "unkeyed_event", 2),  # after a keyed event: caught by the walk itself
    ],
)
def test_a_rewritten_and_rehashed_chain_is_caught(
    rewriter: str, start: int, kind: str, seq: int, data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three_events(data_env, capsys)
    assert main(["audit", "anchor"]) == 0
    capsys.readouterr()
    key = _key(data_env) if rewriter == "with the key" else ChainKey(None)
    asyncio.run(_rewrite_from(data_env, start, key))
    code, report = verify_json(capsys)
    assert code == 1 and report["kind"] == kind and report["first_bad_seq"] == seq, report


def test_an_edited_anchor_file_is_caught(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    three_events(data_env, capsys)
    assert main(["audit", "anchor"]) == 0
    anchors = data_env / "audit-anchors.jsonl"
    line = json.loads(anchors.read_text())
    anchors.write_text(json.dumps({**line, "seq": 2}) + "\n")
    capsys.readouterr()
    code, report = verify_json(capsys)
    assert code == 1 and report["kind"] == "anchor_bad_signature", report


async def test_the_chainer_anchors_on_a_schedule_and_at_shutdown(db: Database, tmp_path: Path) -> None:
    from backend.audit.writer import AuditTrail
    from backend.guard.policy import PiiGuard

    key = ChainKey(b"chainer-anchor-test-key-0123")
    trail = AuditTrail(key, "redacted", PiiGuard(), deferred=True)
    log = AnchorLog(tmp_path / "anchors.jsonl", key)
    chainer = AuditChainer(db, key, trail.enqueued, interval_s=0.05, window_s=0.01, anchors=log, anchor_interval_s=0.1)
    await trail.record(db, AuditEntry(action="a", outcome=Outcome.OK, actor=Actor.system()))
    task = asyncio.create_task(chainer.run())
    for _ in range(100):
        if log.recent()[0]:
            break
        await asyncio.sleep(0.05)
    await trail.record(db, AuditEntry(action="b", outcome=Outcome.OK, actor=Actor.system()))
    for _ in range(100):
        if [a.seq for a in log.recent()[0]] == [1, 2]:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    await trail.record(db, AuditEntry(action="c", outcome=Outcome.OK, actor=Actor.system()))
    await chainer.settle()  # shutdown: chains "c" and anchors it
    anchors, problems = log.recent()
    assert [a.seq for a in anchors] == [1, 2, 3] and not problems
    assert all(a.signature_ok(key) for a in anchors)


# -- the read endpoints and the export ---------------------------------------------------


async def _user_events(runtime: Runtime) -> tuple[dict[str, str], int]:
    keys = {
        "user": await make_key(runtime, "alice@example.com"),
        "auditor": await make_key(runtime, "audrey@example.com", roles={"auditor"}),
    }
    async with runtime.db.session() as s:
        uid = await s.scalar(select(User.id).where(User.email == "alice@example.com"))
    assert uid is not None
    alice = Actor(channel="api", user_id=uid, email="alice@example.com")
    for i in range(3):
        await runtime.audit.record(
            runtime.db,
            AuditEntry(action="chat.completion", outcome=Outcome.OK, actor=alice, request_id=f"r{i}", answer=f"a{i}"),
        )
    await runtime.chainer.drain()
    return keys, 2  # the seq to corrupt: the middle one


@pytest.mark.parametrize("name", ["payload_not_json", "payload_nan", "bad_timestamp", "text_in_number_column"])
async def test_read_endpoints_serve_a_corrupted_row_marked(
    name: str, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    sql, kind, _ = CORRUPTIONS[name]
    keys, seq = await _user_events(runtime)
    async with runtime.db.transaction() as s:
        await s.execute(text(sql.replace("seq = 2", f"seq = {seq}")))
    auditor, user = auth(keys["auditor"]), auth(keys["user"])

    for path, headers in (("/api/v1/admin/audit", auditor), ("/api/v1/me/audit", user)):
        r = await http.get(path, headers=headers)
        assert r.status_code == 200, r.text
        by_seq = {e["seq"]: e for e in r.json()["data"]}
        assert by_seq[seq]["unreadable"]["kind"] == kind
        assert by_seq[seq - 1]["unreadable"] is None and by_seq[seq - 1]["answer"] == "a0"

    r = await http.get(f"/api/v1/admin/audit/{seq}", headers=auditor)
    assert r.status_code == 200 and r.json()["unreadable"]["kind"] == kind
    assert r.json()["integrity"]["hash_ok"] is False
    r = await http.get(f"/api/v1/me/audit/{seq}", headers=user)
    assert r.status_code == 200 and r.json()["unreadable"]["kind"] == kind

    r = await http.get("/api/v1/admin/stats", headers=auditor)
    assert r.status_code == 200, r.text

    r = await http.get("/api/v1/admin/audit/verify", headers=auditor)
    assert r.status_code == 200 and r.json()["kind"] == kind and r.json()["first_bad_seq"] == seq

    r = await http.get("/api/v1/admin/audit/export", headers=auditor)
    assert r.status_code == 200
    records = [json.loads(line) for line in r.text.splitlines()]
    marked = {rec["seq"]: rec["unreadable"] for rec in records}
    assert marked[seq]["kind"] == kind and marked[seq - 1] is None and len(records) >= 4
    r = await http.get("/api/v1/admin/audit/export", headers=auditor, params={"format": "csv"})
    assert r.status_code == 200 and len(r.text.splitlines()) == len(records) + 2  # header, this export
    assert kind in r.text


async def test_read_endpoints_without_a_chain_head_serve_what_is_chained(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    keys, _ = await _user_events(runtime)
    async with runtime.db.transaction() as s:
        await s.execute(text("DELETE FROM audit_chain_head"))
    auditor = auth(keys["auditor"])
    r = await http.get("/api/v1/admin/audit", headers=auditor)
    assert r.status_code == 200 and len(r.json()["data"]) == 3
    r = await http.get("/api/v1/admin/audit/verify", headers=auditor)
    assert r.status_code == 200 and r.json()["kind"] == "missing_head" and r.json()["ok"] is False
    r = await http.get("/api/v1/admin/audit/export", headers=auditor)
    assert r.status_code == 200 and len(r.text.splitlines()) == 3


async def test_export_that_cannot_start_is_a_500_with_a_code_not_an_empty_200(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    keys, _ = await _user_events(runtime)
    # The table is unreadable as a whole (here: gone; on a server, a dropped connection).
    async with runtime.db.transaction() as s:
        await s.execute(text("ALTER TABLE audit_events RENAME TO audit_events_lost"))
    r = await http.get("/api/v1/admin/audit/export", headers=auth(keys["auditor"]))
    assert r.status_code == 500, r.text
    assert r.json()["error"]["code"] == "audit_export_failed"
