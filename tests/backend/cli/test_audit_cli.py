"""`expertgate keys list|revoke` and `expertgate audit verify|export|retention|head`, in-process."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from backend.cli.main import main


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EXPERTGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXPERTGATE_SECRET_KEY", raising=False)
    return tmp_path / "data"


def test_keys_are_listed_revoked_and_every_change_is_audited(
    data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--user", "ops@example.com", "--role", "admin"]) == 0
    assert main(["keys", "create", "--user", "dev@example.com", "--name", "laptop"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "dev@example.com" in listing and secret[:10] in listing and secret not in listing
    assert main(["keys", "revoke", secret[:10]]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "list"]) == 0
    assert "dev@example.com" not in capsys.readouterr().out  # revoked keys hidden ...
    assert main(["keys", "list", "--all"]) == 0
    assert "dev@example.com" in capsys.readouterr().out  # ... unless asked for
    assert main(["keys", "revoke", "999"]) == 1
    assert "no API key" in capsys.readouterr().err

    assert main(["audit", "export", "--format", "jsonl"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # The export is audited before its first line (as through the API): it lists itself.
    assert [e["action"] for e in events] == ["key.created", "key.created", "key.revoked", "audit.exported"]
    assert events[2]["payload"]["for_user"] == "dev@example.com"
    assert events[0]["channel"] == "cli" and events[0]["user_email"].startswith("cli:")


def test_verify_exits_0_then_names_the_edited_seq(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for user in ("a@example.com", "b@example.com", "c@example.com"):
        assert main(["keys", "create", "--user", user]) == 0
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert "intact: 3 events" in capsys.readouterr().out
    head = data_env / "expertgate.db"
    with sqlite3.connect(head) as conn:
        conn.execute("UPDATE audit_events SET payload = '{\"key_id\": 99}' WHERE seq = 2")
    assert main(["audit", "verify"]) == 1
    assert "BROKEN at seq 2" in capsys.readouterr().err
    assert main(["audit", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["first_bad_seq"] == 2


def test_verify_names_a_deleted_seq(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for user in ("a@example.com", "b@example.com", "c@example.com"):
        assert main(["keys", "create", "--user", user]) == 0
    with sqlite3.connect(data_env / "expertgate.db") as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 2")
    capsys.readouterr()
    assert main(["audit", "verify"]) == 1
    assert "BROKEN at seq 2" in capsys.readouterr().err


def test_export_csv_filters_and_retention(data_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--user", "a@example.com"]) == 0
    out = tmp_path / "audit.csv"
    assert main(["audit", "export", "--format", "csv", "--since", "2000-01-01", "-o", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("seq,ts,") and len(rows) == 3  # key.created, audit.exported
    assert [row.split(",")[3] for row in rows[1:]] == ["key.created", "audit.exported"]
    assert main(["audit", "export", "--since", "2999-01-01"]) == 0
    capsys.readouterr()
    assert main(["audit", "retention"]) == 1
    assert "EXPERTGATE_AUDIT_RETENTION_DAYS" in capsys.readouterr().err
    assert main(["audit", "retention", "--days", "30"]) == 0
    assert "purged the text of 0 events" in capsys.readouterr().out
    assert main(["audit", "head"]) == 0
    seq, digest = capsys.readouterr().out.split()
    assert seq == "5" and len(digest) == 64  # two more than before: both exports are audited
    assert main(["audit", "verify"]) == 0


def test_verify_reports_pending_events_and_chain_chains_them(
    data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from backend.audit.chain import ChainKey
    from backend.audit.types import Actor, AuditEntry, Outcome
    from backend.audit.writer import AuditTrail
    from backend.db.session import Database
    from backend.guard.policy import PiiGuard

    assert main(["keys", "create", "--user", "a@example.com"]) == 0  # chained at once (CLI)
    capsys.readouterr()

    async def left_by_a_server() -> None:
        # What an API process that died before chaining leaves: two pending events.
        # It used this data dir's audit key, which the first CLI command created.
        db = Database(f"sqlite+aiosqlite:///{data_env / 'expertgate.db'}")
        key = ChainKey((data_env / "audit.key").read_text().strip().encode())
        trail = AuditTrail(key, "redacted", PiiGuard(), deferred=True)
        for n in (1, 2):
            await trail.record(
                db,
                AuditEntry(action="chat.completion", outcome=Outcome.OK, actor=Actor.anonymous(), request_id=f"r{n}"),
            )
        await db.dispose()

    asyncio.run(left_by_a_server())
    assert main(["audit", "verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["checked"] == 1 and report["pending"] == 2
    assert main(["audit", "chain"]) == 0
    assert "chained 2 pending events" in capsys.readouterr().out
    assert main(["audit", "verify"]) == 0
    assert "3 events verified" in capsys.readouterr().out
